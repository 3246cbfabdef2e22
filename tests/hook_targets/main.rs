//! What a switch hook may do to the transfer it sees, and what a thrown
//! payload becomes; one module per concern.

mod holds;
mod payloads;
mod refusers;

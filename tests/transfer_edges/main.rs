//! The edges of a transfer: what a switch hook may do to the transfer it
//! sees (its target held), greenlets that refused the kill of their
//! collection, the payload a throw carries, and the thread-exit teardown
//! around them; one module per concern.

mod holds;
mod payloads;
mod refusers;
mod refusers_dying;
mod refusers_in_the_hub;
mod teardown_rounds;

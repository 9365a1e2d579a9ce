//! The client side of a connection up to the end of authentication:
//! encryption negotiation, the startup packet, and password checks.

pub mod auth;
pub mod handshake;
pub mod identity;
pub mod md5;
pub mod pgrelay_settings;
pub mod read;

pub use auth::{Credentials, Method, Proof, authenticate};
pub use handshake::{FirstContact, OpenError, open};
pub use identity::Identity;

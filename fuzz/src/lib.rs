//! pgrelay's fuzzing, inside the workspace and on stable Rust: every
//! parser of untrusted input is a [`Target`] (a function of arbitrary
//! bytes that must neither panic nor hang), fed inputs made by mutating
//! seeds with protocol-aware operations ([`mutate`]) by [`run`].
//!
//! No coverage feedback (that needs nightly's sanitizer flags): the
//! generators carry the structure instead, so inputs reach deep (valid
//! frame lengths, SCRAM attributes, SQL keywords).

pub mod generate;
pub mod mutate;
pub mod run;
pub mod targets;

pub use run::{Budget, Outcome, run};
pub use targets::{Target, targets};

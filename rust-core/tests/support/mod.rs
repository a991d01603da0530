//! File systems for tests: a fault-injecting wrapper and a simulated power cut.
#![allow(dead_code)]

pub mod faultfs;
pub mod simfs;

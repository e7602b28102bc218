//! Integration tests: one test binary (faster to build than one per file), one wiremock server
//! per test, and the real `hanbrief` binary run against it. Nothing talks to anything but
//! loopback.

mod batch;
mod budgets;
mod config_check;
mod costs;
mod digest;
mod edges;
mod grounding;
mod identity;
mod logging;
mod outputs;
mod pipeline;
mod provider;
mod quality;
mod servers;
mod small;
mod state;
mod support;
mod ux;

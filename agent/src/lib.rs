//! Canh: an edge video-analytics agent. Camera streams in; vehicle counts, violations and fire
//! alerts out over MQTT. Each module is one stage of the data flow; [`agent`] wires them.

pub mod agent;
pub mod check;
pub mod analytics;
pub mod config;
pub mod control;
pub mod detect;
pub mod events;
pub mod files;
pub mod health;
pub mod listen;
pub mod plates;
pub mod publish;
pub mod render;
pub mod source;
pub mod track;
pub mod types;

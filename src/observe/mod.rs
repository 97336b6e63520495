//! Observability: the key-event bus (feeds keyspace notifications, the `/ws` live feed and
//! metrics) and the logging/tracing setup (OpenTelemetry). Metrics are read at scrape time by
//! `http::metrics`.

pub mod events;
pub mod tracing;

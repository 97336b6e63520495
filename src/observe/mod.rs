//! Observability: the key-event bus (feeds keyspace notifications, the `/ws` live feed and
//! metrics), and later the metrics registry and tracing setup.

pub mod events;

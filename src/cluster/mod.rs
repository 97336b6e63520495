//! Redis Cluster: hash slots (and, in later issues, the node table, gossip bus and migration).

pub mod slots;

//! Keys through the `redis` crate's cluster client, for the tests of real clusters: write
//! `{prefix}:0..n` and find which of them are missing or wrong.

/// `redis://127.0.0.1:<port>/` for each port.
pub fn cluster_urls(ports: &[u16]) -> Vec<String> {
    ports
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}/"))
        .collect()
}

/// A connection of the `redis` crate's cluster client, seeded with `ports`.
pub async fn cluster_conn(ports: &[u16]) -> redis::cluster_async::ClusterConnection {
    redis::cluster::ClusterClient::new(cluster_urls(ports))
        .unwrap()
        .get_async_connection()
        .await
        .unwrap()
}

/// SET `key` to `v` through a cluster connection.
pub async fn set(
    c: &mut redis::cluster_async::ClusterConnection,
    key: &str,
    v: usize,
) -> redis::RedisResult<()> {
    redis::cmd("SET").arg(key).arg(v).query_async(c).await
}

/// Writes `{prefix}:0..n` (value = index) through the cluster client.
pub async fn load_keys_cluster(ports: &[u16], prefix: &str, n: usize) {
    let mut c = cluster_conn(ports).await;
    for i in 0..n {
        set(&mut c, &format!("{prefix}:{i}"), i).await.unwrap();
    }
}

/// Reads `{prefix}:0..n` through the cluster client; returns the keys missing or wrong.
pub async fn missing_keys(ports: &[u16], prefix: &str, n: usize) -> Vec<String> {
    missing_of(ports, prefix, 0..n).await
}

/// Reads `{prefix}:i` for each `i` through the cluster client (each should hold `i`); returns
/// the keys missing or wrong.
pub async fn missing_of(
    ports: &[u16],
    prefix: &str,
    indices: impl IntoIterator<Item = usize>,
) -> Vec<String> {
    let mut c = cluster_conn(ports).await;
    let mut out = Vec::new();
    for i in indices {
        let k = format!("{prefix}:{i}");
        let v: Option<i64> = match redis::cmd("GET").arg(&k).query_async(&mut c).await {
            Ok(v) => v,
            Err(e) => panic!(
                "GET {k} through the cluster client: {e}\n{}",
                views_of_key(ports, &k)
            ),
        };
        if v != Some(i as i64) {
            out.push(k);
        }
    }
    out
}

/// What each node answers for `key` (a redirection, or the key's presence) and its CLUSTER NODES
/// (owners, migrating and importing slots): for the message of a test that failed on a
/// redirection, such as a client following MOVED between two nodes until it gave up.
pub fn views_of_key(ports: &[u16], key: &str) -> String {
    use super::cluster_node::cli;
    let mut s = String::new();
    for &p in ports {
        s += &format!(
            "-- node on port {p}: slot {}, EXISTS -> {}\n{}\n",
            cli(p, &["CLUSTER", "KEYSLOT", key]),
            cli(p, &["EXISTS", key]),
            cli(p, &["CLUSTER", "NODES"])
        );
    }
    s
}

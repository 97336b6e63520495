//! Geospatial indexes: GEOADD, GEODIST, GEOHASH, GEOPOS, GEOSEARCH, GEOSEARCHSTORE and the older
//! GEORADIUS family. As in Redis, a geo index is a sorted set whose scores are 52-bit geohashes
//! (26 bits of longitude and 26 of latitude, interleaved, latitude limited to the Web Mercator
//! range ±85.05112878), so every sorted-set command works on it and a key holds the same
//! scores on both servers.
//!
//! A search covers its shape with the cell of the centre and its eight neighbours, at the
//! precision (`step`) where a cell is about as large as the shape, reads each cell's score
//! range from the sorted set and keeps the points inside the shape. The cells, their order and
//! the distance formula are Redis's (`geohash.c`, `geohash_helper.c`), so unsorted results come
//! out in Redis's order and distances agree to the last digit.

use bytes::Bytes;
use smallvec::SmallVec;

use super::Ctx;
use super::args::{eq_ic, float, int, parse_float};
use super::error::{CmdError, CmdResult};
use super::table::{Command, KEY1, KEY12, KeySpec, R, WM, cmd};
use crate::commands::flags::*;
use crate::resp::Reply;
use crate::store::Keyspace;
use crate::store::Sds;
use crate::store::zset::ZSet;

const LONG_MIN: f64 = -180.0;
const LONG_MAX: f64 = 180.0;
const LAT_MIN: f64 = -85.05112878;
const LAT_MAX: f64 = 85.05112878;
/// Bits per coordinate in a stored score.
const STEP_MAX: u8 = 26;
/// The mean radius Redis uses for its haversine distances.
const EARTH_RADIUS_M: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;
const D_R: f64 = std::f64::consts::PI / 180.0;

/// A geohash of `step` bits per coordinate (latitude in the even bits, longitude in the odd).
#[derive(Clone, Copy, PartialEq, Debug, Default)]
struct Cell {
    bits: u64,
    step: u8,
}

impl Cell {
    /// Redis's `HASHISZERO`: a neighbour struck out of a search.
    fn is_zero(self) -> bool {
        self.bits == 0 && self.step == 0
    }

    /// The first score of the cell, as a 52-bit score.
    fn align52(self) -> u64 {
        self.bits << (52 - u32::from(self.step) * 2)
    }

    /// The cell `d` (-1, 0 or 1) cells along one coordinate: `lane` is its bits' mask
    /// (longitude odd, latitude even). The other coordinate's bits fill the carries' gaps.
    fn moved(mut self, d: i8, lane: u64) -> Cell {
        if d == 0 {
            return self;
        }
        let shift = 64 - u32::from(self.step) * 2;
        let mut v = self.bits & lane;
        let other = self.bits & !lane;
        let gaps = !lane >> shift;
        if d > 0 {
            v = v.wrapping_add(gaps + 1);
        } else {
            v |= gaps;
            v = v.wrapping_sub(gaps + 1);
        }
        v &= lane >> shift;
        self.bits = v | other;
        self
    }

    fn moved_x(self, d: i8) -> Cell {
        self.moved(d, 0xaaaa_aaaa_aaaa_aaaa)
    }

    fn moved_y(self, d: i8) -> Cell {
        self.moved(d, 0x5555_5555_5555_5555)
    }

    /// North, south, east, west, north-east, north-west, south-east, south-west: the order a
    /// search reads them in.
    fn neighbours(self) -> [Cell; 8] {
        [
            self.moved_y(1),
            self.moved_y(-1),
            self.moved_x(1),
            self.moved_x(-1),
            self.moved_x(1).moved_y(1),
            self.moved_x(-1).moved_y(1),
            self.moved_x(1).moved_y(-1),
            self.moved_x(-1).moved_y(-1),
        ]
    }
}

/// Spreads the low 32 bits of `v` to the even bits.
fn spread(v: u32) -> u64 {
    let mut x = u64::from(v);
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

/// Gathers the even bits of `v` into the low 32.
fn squash(v: u64) -> u32 {
    let mut x = v & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    ((x | (x >> 16)) & 0x0000_0000_FFFF_FFFF) as u32
}

#[derive(Clone, Copy, Debug)]
struct Span {
    min: f64,
    max: f64,
}

/// The ranges scores are made in; GEOHASH re-encodes in the standard geohash's latitude range.
const MERCATOR: (Span, Span) = (
    Span {
        min: LONG_MIN,
        max: LONG_MAX,
    },
    Span {
        min: LAT_MIN,
        max: LAT_MAX,
    },
);

#[derive(Clone, Copy, Debug)]
struct Area {
    lon: Span,
    lat: Span,
}

fn encode(ranges: (Span, Span), lon: f64, lat: f64, step: u8) -> Option<Cell> {
    let (lon_r, lat_r) = ranges;
    if !(LONG_MIN..=LONG_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return None;
    }
    if lat < lat_r.min || lat > lat_r.max || lon < lon_r.min || lon > lon_r.max {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_offset = (lat - lat_r.min) / (lat_r.max - lat_r.min) * scale;
    let lon_offset = (lon - lon_r.min) / (lon_r.max - lon_r.min) * scale;
    Some(Cell {
        bits: spread(lat_offset as u32) | (spread(lon_offset as u32) << 1),
        step,
    })
}

fn decode(ranges: (Span, Span), cell: Cell) -> Option<Area> {
    if cell.is_zero() {
        return None;
    }
    let (lon_r, lat_r) = ranges;
    let ilat = squash(cell.bits) as f64;
    let ilon = squash(cell.bits >> 1) as f64;
    let div = (1u64 << cell.step) as f64;
    let (lat_scale, lon_scale) = (lat_r.max - lat_r.min, lon_r.max - lon_r.min);
    Some(Area {
        lat: Span {
            min: lat_r.min + (ilat / div) * lat_scale,
            max: lat_r.min + ((ilat + 1.0) / div) * lat_scale,
        },
        lon: Span {
            min: lon_r.min + (ilon / div) * lon_scale,
            max: lon_r.min + ((ilon + 1.0) / div) * lon_scale,
        },
    })
}

/// C's `(uint64_t)score` as x86-64 code computes it, for any score a sorted set may hold
/// (ZADD takes negative and huge ones): a negative score wraps around, and a value that does
/// not fit gives the conversion's "indefinite" result.
fn score_bits(score: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    let cvt = |v: f64| {
        if v.is_nan() || !(-TWO63..TWO63).contains(&v) {
            i64::MIN
        } else {
            v as i64
        }
    };
    if score < TWO63 {
        cvt(score) as u64
    } else {
        (cvt(score - TWO63) as u64) ^ (1 << 63)
    }
}

/// The point a stored score stands for: the centre of its cell.
fn decode_score(score: f64) -> Option<[f64; 2]> {
    let area = decode(
        MERCATOR,
        Cell {
            bits: score_bits(score),
            step: STEP_MAX,
        },
    )?;
    let lon = ((area.lon.min + area.lon.max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let lat = ((area.lat.min + area.lat.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    Some([lon, lat])
}

/// The score GEOADD stores for a point.
fn score_of(lon: f64, lat: f64) -> Option<u64> {
    encode(MERCATOR, lon, lat, STEP_MAX).map(Cell::align52)
}

/// Distance along a meridian.
fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_M * (lat2 * D_R - lat1 * D_R).abs()
}

/// Haversine great-circle distance in metres.
fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (lon1r, lon2r) = (lon1 * D_R, lon2 * D_R);
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let (lat1r, lat2r) = (lat1 * D_R, lat2 * D_R);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

#[derive(Clone, Copy, Debug)]
enum Form {
    Circle { radius: f64 },
    Box { width: f64, height: f64 },
}

/// A search area: centre, form (in the request's unit) and the unit's size in metres.
#[derive(Clone, Copy, Debug)]
struct Shape {
    xy: [f64; 2],
    to_meters: f64,
    form: Form,
}

impl Shape {
    /// The distance from the centre to a point in the shape, None when it is outside.
    fn contains(&self, xy: [f64; 2]) -> Option<f64> {
        let [x1, y1] = self.xy;
        let [x2, y2] = xy;
        match self.form {
            Form::Circle { radius } => {
                let d = distance(x1, y1, x2, y2);
                (d <= radius * self.to_meters).then_some(d)
            }
            Form::Box { width, height } => {
                let (w, h) = (width * self.to_meters, height * self.to_meters);
                if lat_distance(y2, y1) > h / 2.0 || distance(x2, y2, x1, y2) > w / 2.0 {
                    return None;
                }
                Some(distance(x1, y1, x2, y2))
            }
        }
    }

    /// Longitude and latitude bounds: min lon, min lat, max lon, max lat.
    fn bounds(&self) -> [f64; 4] {
        let [lon, lat] = self.xy;
        let (height, width) = match self.form {
            Form::Circle { radius } => (radius, radius),
            Form::Box { width, height } => (height / 2.0, width / 2.0),
        };
        let (height, width) = (height * self.to_meters, width * self.to_meters);
        let lat_delta = (height / EARTH_RADIUS_M) / D_R;
        let lon_delta_top = (width / EARTH_RADIUS_M / ((lat + lat_delta) * D_R).cos()) / D_R;
        let lon_delta_bottom = (width / EARTH_RADIUS_M / ((lat - lat_delta) * D_R).cos()) / D_R;
        // The box is widest on the side nearer the equator.
        let lon_delta = if lat < 0.0 {
            lon_delta_bottom
        } else {
            lon_delta_top
        };
        [
            lon - lon_delta,
            lat - lat_delta,
            lon + lon_delta,
            lat + lat_delta,
        ]
    }

    /// The radius of a circle holding the shape, in metres.
    fn reach(&self) -> f64 {
        let r = match self.form {
            Form::Circle { radius } => radius,
            Form::Box { width, height } => ((width / 2.0).powi(2) + (height / 2.0).powi(2)).sqrt(),
        };
        r * self.to_meters
    }

    /// The centre's cell and its neighbours, in the order they are read; struck-out
    /// neighbours are zero.
    fn cells(&self) -> [Cell; 9] {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounds();
        let [lon, lat] = self.xy;
        let mut step = estimate_step(self.reach(), lat);
        let at = |step| {
            let cell = encode(MERCATOR, lon, lat, step).unwrap_or_default();
            (cell, decode(MERCATOR, cell))
        };
        let (mut cell, mut area) = at(step);
        let mut near = cell.neighbours();
        // A neighbour too close to the shape to cover it: one step coarser.
        let edge = |i: usize| decode(MERCATOR, near[i]);
        let too_fine = edge(0).is_some_and(|a| a.lat.max < max_lat)
            || edge(1).is_some_and(|a| a.lat.min > min_lat)
            || edge(2).is_some_and(|a| a.lon.max < max_lon)
            || edge(3).is_some_and(|a| a.lon.min > min_lon);
        if step > 1 && too_fine {
            step -= 1;
            (cell, area) = at(step);
            near = cell.neighbours();
        }
        const N: usize = 0;
        const S: usize = 1;
        const E: usize = 2;
        const W: usize = 3;
        const NE: usize = 4;
        const NW: usize = 5;
        const SE: usize = 6;
        const SW: usize = 7;
        if let (true, Some(area)) = (step >= 2, area) {
            let mut strike = |ids: [usize; 3]| ids.iter().for_each(|&i| near[i] = Cell::default());
            if area.lat.min < min_lat {
                strike([S, SW, SE]);
            }
            if area.lat.max > max_lat {
                strike([N, NE, NW]);
            }
            if area.lon.min < min_lon {
                strike([W, SW, NW]);
            }
            if area.lon.max > max_lon {
                strike([E, SE, NE]);
            }
        }
        let mut all = [cell; 9];
        all[1..].copy_from_slice(&near);
        all
    }
}

/// The precision at which a cell is about `range_m` across (more cells near the poles).
fn estimate_step(range_m: f64, lat: f64) -> u8 {
    if range_m == 0.0 {
        return 26;
    }
    let mut range = range_m;
    let mut step: i32 = 1;
    while range < MERCATOR_MAX {
        range *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

/// A point found by a search.
struct Found {
    member: Sds,
    score: f64,
    dist: f64,
    xy: [f64; 2],
}

/// The points of `z` inside `shape`, cell by cell; with `limit` (ANY), it stops once it has
/// that many.
fn search(z: &ZSet, shape: &Shape, limit: usize) -> Vec<Found> {
    let cells = shape.cells();
    let mut found = Vec::new();
    let mut last: Option<Cell> = None;
    for (i, &cell) in cells.iter().enumerate() {
        if cell.is_zero() {
            continue;
        }
        // With a huge radius, neighbours can be the same cell: read each run once (the
        // centre is never compared, as in Redis).
        if i > 0 && last == Some(cell) {
            continue;
        }
        if limit > 0 && found.len() >= limit {
            break;
        }
        let min = cell.align52() as f64;
        let max = Cell {
            bits: cell.bits + 1,
            step: cell.step,
        }
        .align52() as f64;
        let start = z.count_while(|s, _| s < min);
        for (member, score) in z.iter_from(start, false) {
            if score >= max {
                break;
            }
            let Some(xy) = decode_score(score) else {
                continue;
            };
            if let Some(dist) = shape.contains(xy) {
                found.push(Found {
                    member: Sds::new(member),
                    score,
                    dist,
                    xy,
                });
                if limit > 0 && found.len() >= limit {
                    break;
                }
            }
        }
        if i > 0 {
            last = Some(cell);
        }
    }
    found
}

fn zset_read<'k>(
    ks: &'k mut Keyspace,
    db: usize,
    key: &[u8],
) -> Result<Option<&'k mut ZSet>, CmdError> {
    super::typed(ks.lookup_read(db, key)?, |v| match v {
        crate::store::Value::ZSet(z) => Some(z),
        _ => None,
    })
}

/// A longitude and latitude argument pair, in range.
fn lon_lat(args: &[Bytes]) -> Result<[f64; 2], CmdError> {
    let xy = [float(&args[0])?, float(&args[1])?];
    if !(LONG_MIN..=LONG_MAX).contains(&xy[0]) || !(LAT_MIN..=LAT_MAX).contains(&xy[1]) {
        return Err(CmdError::err(format!(
            "invalid longitude,latitude pair {:.6},{:.6}",
            xy[0], xy[1]
        )));
    }
    Ok(xy)
}

/// A unit's size in metres.
fn unit(arg: &[u8]) -> Result<f64, CmdError> {
    Ok(match arg.to_ascii_lowercase().as_slice() {
        b"m" => 1.0,
        b"km" => 1000.0,
        b"ft" => 0.3048,
        b"mi" => 1609.34,
        _ => {
            return Err(CmdError::err(
                "unsupported unit provided. please use M, KM, FT, MI",
            ));
        }
    })
}

fn number(arg: &[u8], what: &str) -> Result<f64, CmdError> {
    parse_float(arg).ok_or_else(|| CmdError::err(format!("need numeric {what}")))
}

/// `<radius> <unit>`: the radius (in the unit) and the unit's size in metres.
fn radius(args: &[Bytes]) -> Result<(f64, f64), CmdError> {
    let r = number(&args[0], "radius")?;
    if r < 0.0 {
        return Err(CmdError::err("radius cannot be negative"));
    }
    Ok((r, unit(&args[1])?))
}

/// A distance as Redis replies it (`fixedpoint_d2string`): scaled by 10^4 and rounded half
/// to even, then four decimals.
fn reply_distance(out: &mut Reply, d: f64) {
    out.bulk(distance_text(d).as_bytes());
}

fn distance_text(d: f64) -> String {
    if d == 0.0 {
        return "0.0000".into();
    }
    // (`as` saturates as llrint's overflow does not, but no distance on Earth gets near.)
    let scaled = (d * 10_000.0).round_ties_even() as i64;
    let sign = if scaled < 0 { "-" } else { "" };
    let v = scaled.unsigned_abs();
    format!("{sign}{}.{:04}", v / 10_000, v % 10_000)
}

/// A coordinate as Redis's `addReplyHumanLongDouble`: 17 decimals, trailing zeros dropped;
/// a bulk string in RESP2, a double in RESP3.
fn reply_coordinate(out: &mut Reply, v: f64) {
    let mut s = format!("{v:.17}");
    if s.contains('.') {
        let kept = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(kept);
    }
    if s == "-0" {
        s = "0".into();
    }
    if out.resp3() {
        let buf = out.buf();
        buf.extend_from_slice(b",");
        buf.extend_from_slice(s.as_bytes());
        buf.extend_from_slice(b"\r\n");
    } else {
        out.bulk(s.as_bytes());
    }
}

/// GEOADD key [NX|XX] [CH] longitude latitude member [...]: ZADD with geohash scores.
pub fn geoadd(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let (mut nx, mut xx) = (false, false);
    let mut first = 2;
    while first < args.len() {
        let a = &args[first];
        if eq_ic(a, "nx") {
            nx = true;
        } else if eq_ic(a, "xx") {
            xx = true;
        } else if !eq_ic(a, "ch") {
            break;
        }
        first += 1;
    }
    if !(args.len() - first).is_multiple_of(3) || (nx && xx) {
        return Err(CmdError::Syntax);
    }
    let mut zadd_args: Vec<Bytes> = Vec::with_capacity(first + (args.len() - first) / 3 * 2);
    zadd_args.push(Bytes::from_static(b"zadd"));
    zadd_args.extend_from_slice(&args[1..first]);
    for point in args[first..].chunks(3) {
        let [lon, lat] = lon_lat(point)?;
        let score = score_of(lon, lat).ok_or(CmdError::Syntax)?;
        zadd_args.push(Bytes::from(score.to_string()));
        zadd_args.push(point[2].clone());
    }
    super::zset::zadd(ctx, ks, &zadd_args)
}

/// GEODIST key member1 member2 [unit]
pub fn geodist(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let to_meters = match args.len() {
        5 => unit(&args[4])?,
        4 => 1.0,
        _ => return Err(CmdError::Syntax),
    };
    let points = zset_read(ks, ctx.client.db, &args[1])?.and_then(|z| {
        let a = decode_score(z.score(&args[2])?)?;
        let b = decode_score(z.score(&args[3])?)?;
        Some((a, b))
    });
    match points {
        Some((a, b)) => reply_distance(&mut ctx.out, distance(a[0], a[1], b[0], b[1]) / to_meters),
        None => ctx.out.null(),
    }
    Ok(())
}

/// GEOHASH key [member ...]: standard 11-character geohashes.
pub fn geohash(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let standard = (
        Span {
            min: -180.0,
            max: 180.0,
        },
        Span {
            min: -90.0,
            max: 90.0,
        },
    );
    let z = zset_read(ks, ctx.client.db, &args[1])?;
    let z = z.as_deref();
    ctx.out.array(args.len() - 2);
    for member in &args[2..] {
        // Stored scores use latitudes of ±85.05; the standard geohash is re-encoded in ±90.
        let cell = z
            .and_then(|z| z.score(member))
            .and_then(decode_score)
            .and_then(|[lon, lat]| encode(standard, lon, lat, 26));
        match cell {
            Some(cell) => {
                let text: Vec<u8> = (0..11)
                    .map(|i| {
                        // 52 bits make ten characters; the eleventh is 0, as in Redis.
                        let idx = if i == 10 {
                            0
                        } else {
                            (cell.bits >> (52 - (i + 1) * 5)) & 0x1f
                        };
                        ALPHABET[idx as usize]
                    })
                    .collect();
                ctx.out.bulk(&text);
            }
            None => ctx.out.null(),
        }
    }
    Ok(())
}

/// GEOPOS key [member ...]
pub fn geopos(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let z = zset_read(ks, ctx.client.db, &args[1])?;
    let z = z.as_deref();
    ctx.out.array(args.len() - 2);
    for member in &args[2..] {
        match z.and_then(|z| z.score(member)).and_then(decode_score) {
            Some([lon, lat]) => {
                ctx.out.array(2);
                reply_coordinate(&mut ctx.out, lon);
                reply_coordinate(&mut ctx.out, lat);
            }
            None => ctx.out.null_array(),
        }
    }
    Ok(())
}

/// Which command of the family runs.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// GEORADIUS / GEORADIUS_RO: `key lon lat radius unit`.
    Coords,
    /// GEORADIUSBYMEMBER / _RO: `key member radius unit`.
    Member,
    /// GEOSEARCH: `key` then FROM... BY...
    Search,
    /// GEOSEARCHSTORE: `dest key` then as GEOSEARCH.
    SearchStore,
}

#[derive(Clone, Copy, PartialEq)]
enum Order {
    None,
    Asc,
    Desc,
}

/// The GEORADIUS and GEOSEARCH family, Redis's `georadiusGeneric`: errors come in its order.
fn search_generic(
    ctx: &mut Ctx,
    ks: &mut Keyspace,
    args: &[Bytes],
    kind: Kind,
    may_store: bool,
) -> CmdResult {
    let db = ctx.client.db;
    let src = if kind == Kind::SearchStore {
        &args[2]
    } else {
        &args[1]
    };
    let z = zset_read(ks, db, src)?.map(|z| &*z);
    let mut shape = Shape {
        xy: [0.0; 2],
        to_meters: 1.0,
        form: Form::Circle { radius: 0.0 },
    };
    let base = match kind {
        Kind::Coords => {
            shape.xy = lon_lat(&args[2..4])?;
            let (r, to_meters) = radius(&args[4..6])?;
            (shape.form, shape.to_meters) = (Form::Circle { radius: r }, to_meters);
            6
        }
        Kind::Member => {
            // Without the key the rest is parsed only to choose the reply.
            if let Some(z) = z {
                shape.xy = z
                    .score(&args[2])
                    .and_then(decode_score)
                    .ok_or_else(|| CmdError::err("could not decode requested zset member"))?;
                let (r, to_meters) = radius(&args[3..5])?;
                (shape.form, shape.to_meters) = (Form::Circle { radius: r }, to_meters);
            }
            5
        }
        Kind::Search => 2,
        Kind::SearchStore => 3,
    };
    let searching = matches!(kind, Kind::Search | Kind::SearchStore);
    let mut store: Option<&Bytes> = (kind == Kind::SearchStore).then_some(&args[1]);
    let (mut withdist, mut withhash, mut withcoord, mut storedist, mut any) =
        (false, false, false, false, false);
    let (mut from_member, mut from_lonlat, mut by_radius, mut by_box) =
        (false, false, false, false);
    let mut order = Order::None;
    let mut count: i64 = 0;
    let rest = &args[base..];
    let mut i = 0;
    while i < rest.len() {
        let a = &rest[i];
        let left = rest.len() - i - 1;
        if eq_ic(a, "withdist") {
            withdist = true;
        } else if eq_ic(a, "withhash") {
            withhash = true;
        } else if eq_ic(a, "withcoord") {
            withcoord = true;
        } else if eq_ic(a, "any") {
            any = true;
        } else if eq_ic(a, "asc") {
            order = Order::Asc;
        } else if eq_ic(a, "desc") {
            order = Order::Desc;
        } else if eq_ic(a, "count") && left >= 1 {
            count = int(&rest[i + 1])?;
            if count <= 0 {
                return Err(CmdError::err("COUNT must be > 0"));
            }
            i += 1;
        } else if (eq_ic(a, "store") || eq_ic(a, "storedist")) && left >= 1 && may_store {
            store = Some(&rest[i + 1]);
            storedist = eq_ic(a, "storedist");
            i += 1;
        } else if eq_ic(a, "storedist") && kind == Kind::SearchStore {
            storedist = true;
        } else if eq_ic(a, "frommember") && left >= 1 && searching && !from_lonlat {
            if let Some(z) = z {
                shape.xy = z
                    .score(&rest[i + 1])
                    .and_then(decode_score)
                    .ok_or_else(|| CmdError::err("could not decode requested zset member"))?;
            }
            from_member = true;
            i += 1;
        } else if eq_ic(a, "fromlonlat") && left >= 2 && searching && !from_member {
            shape.xy = lon_lat(&rest[i + 1..i + 3])?;
            from_lonlat = true;
            i += 2;
        } else if eq_ic(a, "byradius") && left >= 2 && searching && !by_box {
            let (r, to_meters) = radius(&rest[i + 1..i + 3])?;
            (shape.form, shape.to_meters) = (Form::Circle { radius: r }, to_meters);
            by_radius = true;
            i += 2;
        } else if eq_ic(a, "bybox") && left >= 3 && searching && !by_radius {
            let width = number(&rest[i + 1], "width")?;
            let height = number(&rest[i + 2], "height")?;
            if width < 0.0 || height < 0.0 {
                return Err(CmdError::err("height or width cannot be negative"));
            }
            let to_meters = unit(&rest[i + 3])?;
            (shape.form, shape.to_meters) = (Form::Box { width, height }, to_meters);
            by_box = true;
            i += 3;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if store.is_some() && (withdist || withhash || withcoord) {
        let what = if kind == Kind::SearchStore {
            "GEOSEARCHSTORE"
        } else {
            "STORE option in GEORADIUS"
        };
        return Err(CmdError::err(format!(
            "{what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        )));
    }
    let name = String::from_utf8_lossy(&args[0]);
    if searching && !(from_member || from_lonlat) {
        return Err(CmdError::err(format!(
            "exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        )));
    }
    if searching && !(by_radius || by_box) {
        return Err(CmdError::err(format!(
            "exactly one of BYRADIUS and BYBOX can be specified for {name}"
        )));
    }
    if any && count == 0 {
        return Err(CmdError::err("the ANY argument requires COUNT argument"));
    }
    let Some(z) = z else {
        return match store {
            Some(dst) => super::zset::store_result(ctx, ks, dst, Vec::new(), "geosearchstore"),
            None => {
                ctx.log_as = Some(Vec::new());
                ctx.out.array(0);
                Ok(())
            }
        };
    };
    // COUNT means the nearest N: sorted, unless ANY asked for any N.
    if count > 0 && order == Order::None && !any {
        order = Order::Asc;
    }
    let mut found = search(z, &shape, if any { count as usize } else { 0 });
    match order {
        Order::Asc => found.sort_by(|a, b| a.dist.total_cmp(&b.dist)),
        Order::Desc => found.sort_by(|a, b| b.dist.total_cmp(&a.dist)),
        Order::None => {}
    }
    if count > 0 {
        found.truncate(count as usize);
    }
    for f in &mut found {
        f.dist /= shape.to_meters;
    }
    if let Some(dst) = store {
        let items: Vec<_> = found
            .into_iter()
            .map(|f| (f.member, if storedist { f.dist } else { f.score }))
            .collect();
        let event = if searching {
            "geosearchstore"
        } else {
            "georadiusstore"
        };
        // Redis counts one change per member stored (georadiusGeneric), where the other
        // STORE commands count one.
        let stored = items.len() as u64;
        super::zset::store_result(ctx, ks, dst, items, event)?;
        ctx.dirty(stored.saturating_sub(1));
        return Ok(());
    }
    // GEORADIUS without STORE only read: nothing for the log or the replicas.
    ctx.log_as = Some(Vec::new());
    let extras = usize::from(withdist) + usize::from(withhash) + usize::from(withcoord);
    let out = &mut ctx.out;
    out.array(found.len());
    for f in &found {
        if extras > 0 {
            out.array(extras + 1);
        }
        out.bulk(&f.member);
        if withdist {
            reply_distance(out, f.dist);
        }
        if withhash {
            out.int(f.score as i64);
        }
        if withcoord {
            out.array(2);
            reply_coordinate(out, f.xy[0]);
            reply_coordinate(out, f.xy[1]);
        }
    }
    Ok(())
}

pub fn georadius(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    search_generic(ctx, ks, args, Kind::Coords, true)
}

pub fn georadius_ro(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    search_generic(ctx, ks, args, Kind::Coords, false)
}

pub fn georadiusbymember(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    search_generic(ctx, ks, args, Kind::Member, true)
}

pub fn georadiusbymember_ro(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    search_generic(ctx, ks, args, Kind::Member, false)
}

pub fn geosearch(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    search_generic(ctx, ks, args, Kind::Search, false)
}

pub fn geosearchstore(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    search_generic(ctx, ks, args, Kind::SearchStore, false)
}

/// GEORADIUS(BYMEMBER)'s keys: the source, then the keys after STORE, then those after
/// STOREDIST. The command writes the last of them (Redis's `georadiusGetKeys`); COMMAND GETKEYS
/// lists them in this order, as Redis's key specs do when each option is given once.
fn radius_keys(args: &[Bytes]) -> SmallVec<[usize; 4]> {
    let mut store: SmallVec<[usize; 4]> = SmallVec::new();
    let mut storedist: SmallVec<[usize; 4]> = SmallVec::new();
    let mut i = 5;
    while i < args.len() {
        if i + 1 < args.len() {
            if eq_ic(&args[i], "store") {
                store.push(i + 1);
                i += 1;
            } else if eq_ic(&args[i], "storedist") {
                storedist.push(i + 1);
                i += 1;
            }
        }
        i += 1;
    }
    let mut keys: SmallVec<[usize; 4]> = SmallVec::new();
    keys.push(1);
    keys.extend(store);
    keys.extend(storedist);
    keys
}

const RO_ACCESS: &[&str] = &["RO", "access"];
const OW_UPDATE: &[&str] = &["OW", "update"];

static GEORADIUS_SPECS: &[KeySpec] = &[
    KeySpec::range(RO_ACCESS, 1, 0, 1),
    KeySpec::keyword(OW_UPDATE, "STORE", 6, 0, 1),
    KeySpec::keyword(OW_UPDATE, "STOREDIST", 6, 0, 1),
];
static GEORADIUSBYMEMBER_SPECS: &[KeySpec] = &[
    KeySpec::range(RO_ACCESS, 1, 0, 1),
    KeySpec::keyword(OW_UPDATE, "STORE", 5, 0, 1),
    KeySpec::keyword(OW_UPDATE, "STOREDIST", 5, 0, 1),
];

pub static COMMANDS: &[Command] = &[
    cmd!(
        "geoadd",
        -5,
        WM,
        KEY1,
        "geo",
        "3.2.0",
        geoadd,
        "Adds one or more members to a geospatial index. The key is created if it doesn't exist."
    )
    .specs(&[KeySpec::range(&["RW", "update"], 1, 0, 1)]),
    cmd!(
        "geodist",
        -4,
        R,
        KEY1,
        "geo",
        "3.2.0",
        geodist,
        "Returns the distance between two members of a geospatial index."
    ),
    cmd!(
        "geohash",
        -2,
        R,
        KEY1,
        "geo",
        "3.2.0",
        geohash,
        "Returns members from a geospatial index as geohash strings."
    ),
    cmd!(
        "geopos",
        -2,
        R,
        KEY1,
        "geo",
        "3.2.0",
        geopos,
        "Returns the longitude and latitude of members from a geospatial index."
    ),
    Command {
        keys_fn: Some(radius_keys),
        flags: WRITE | DENYOOM | MOVABLEKEYS,
        ..cmd!(
            "georadius",
            -6,
            WM,
            KEY1,
            "geo",
            "3.2.0",
            georadius,
            "Queries a geospatial index for members within a distance from a coordinate, optionally stores the result."
        )
        .specs(GEORADIUS_SPECS)
    },
    cmd!(
        "georadius_ro",
        -6,
        R,
        KEY1,
        "geo",
        "3.2.10",
        georadius_ro,
        "Returns members from a geospatial index that are within a distance from a coordinate."
    ),
    Command {
        keys_fn: Some(radius_keys),
        flags: WRITE | DENYOOM | MOVABLEKEYS,
        ..cmd!(
            "georadiusbymember",
            -5,
            WM,
            KEY1,
            "geo",
            "3.2.0",
            georadiusbymember,
            "Queries a geospatial index for members within a distance from a member, optionally stores the result."
        )
        .specs(GEORADIUSBYMEMBER_SPECS)
    },
    cmd!(
        "georadiusbymember_ro",
        -5,
        R,
        KEY1,
        "geo",
        "3.2.10",
        georadiusbymember_ro,
        "Returns members from a geospatial index that are within a distance from a member."
    ),
    cmd!(
        "geosearch",
        -7,
        R,
        KEY1,
        "geo",
        "6.2.0",
        geosearch,
        "Queries a geospatial index for members inside an area of a box or a circle."
    ),
    cmd!(
        "geosearchstore",
        -8,
        WM,
        KEY12,
        "geo",
        "6.2.0",
        geosearchstore,
        "Queries a geospatial index for members inside an area of a box or a circle, optionally stores the result."
    )
    .specs(&[
        KeySpec::range(OW_UPDATE, 1, 0, 1),
        KeySpec::range(RO_ACCESS, 2, 0, 1),
    ]),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaving_round_trips() {
        for v in [0u32, 1, 0x3ff_ffff, 0xdead_beef, u32::MAX] {
            assert_eq!(squash(spread(v)), v);
            assert_eq!(squash(spread(v) << 1 >> 1), v);
        }
        assert_eq!(spread(0b11), 0b101);
    }

    #[test]
    fn scores_match_redis() {
        // GEOADD Sicily 13.361389 38.115556 Palermo 15.087269 37.502669 Catania on
        // redis-server 7.0 stores these scores.
        assert_eq!(score_of(13.361389, 38.115556), Some(3479099956230698));
        assert_eq!(score_of(15.087269, 37.502669), Some(3479447370796909));
        assert_eq!(score_of(181.0, 0.0), None);
    }

    #[test]
    fn distances_match_redis() {
        let p = decode_score(3479099956230698.0).expect("decodes");
        let c = decode_score(3479447370796909.0).expect("decodes");
        // GEODIST Sicily Palermo Catania: "166274.1516".
        assert_eq!(
            distance_text(distance(p[0], p[1], c[0], c[1])),
            "166274.1516"
        );
        // Rounded after scaling, half to even, as llrint: 0.00005 scales to 0.5 -> 0, and
        // 1.23456 to 12345.6 -> 12346; formatting the decimal value would give 0.0001 first.
        assert_eq!(distance_text(0.00005), "0.0000");
        assert_eq!(distance_text(1.23456), "1.2346");
        assert_eq!(distance_text(0.0), "0.0000");
    }

    #[test]
    fn neighbours_move_one_cell() {
        let c = encode(MERCATOR, 0.0, 0.0, 4).expect("in range");
        let area = decode(MERCATOR, c).expect("area");
        let north = decode(MERCATOR, c.neighbours()[0]).expect("area");
        assert_eq!(north.lat.min, area.lat.max);
        assert_eq!(north.lon.min, area.lon.min);
        let west = decode(MERCATOR, c.neighbours()[3]).expect("area");
        assert_eq!(west.lon.max, area.lon.min);
    }
}

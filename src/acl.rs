//! Access control lists, as Redis 7.0's ACL: users with passwords, and the commands, keys and
//! pub/sub channels each may use. Selectors (`(...)` rules) are not supported; everything else
//! of `ACL SETUSER`'s rule language is, with Redis's semantics and error messages.
//!
//! A user's command permissions are a bit per entry of the command table (subcommands
//! included), set and cleared by the rules in order, as Redis keeps them; `ACL LIST` and `ACL
//! GETUSER` describe the bits back as rules the way Redis does (the best-fitting categories
//! first, then single commands). Users are kept as immutable snapshots: `ACL SETUSER` replaces
//! one and bumps a generation counter, and a connection re-reads its user when the counter
//! moved (one atomic load per command). The default user, allowed everything, is checked by one
//! flag.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::commands::flags;
use crate::commands::table::{CommandRef, acl_categories, table};
use crate::glob::glob_match;
use crate::resp::parser::split_args;

/// Redis's categories, in its order (`ACLCommandCategories`), without the `@`.
pub const CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// Each table entry's categories as a bit per [`CATEGORIES`] index.
fn category_masks() -> &'static [u32] {
    static MASKS: OnceLock<Vec<u32>> = OnceLock::new();
    MASKS.get_or_init(|| {
        table()
            .all
            .iter()
            .map(|c| {
                acl_categories(c.cmd).iter().fold(0u32, |m, cat| {
                    match CATEGORIES.iter().position(|n| *n == &cat[1..]) {
                        Some(i) => m | 1 << i,
                        None => m,
                    }
                })
            })
            .collect()
    })
}

pub fn category_index(name: &str) -> Option<usize> {
    CATEGORIES.iter().position(|c| c.eq_ignore_ascii_case(name))
}

/// The table entries of a category, top-level commands and subcommands, in table order. A
/// container (CONFIG, CLIENT, ...) is `@slow` as Redis's implicit categories make it.
pub fn commands_in_category(cat: usize) -> impl Iterator<Item = &'static CommandRef> {
    let masks = category_masks();
    table()
        .all
        .iter()
        .filter(move |c| masks[c.id] & (1 << cat) != 0)
}

/// The SHA-256 of a password, in lower-case hex (how Redis stores and shows them).
pub fn hash_password(pass: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(pass);
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[derive(Clone, Debug, PartialEq)]
struct KeyPattern {
    pattern: Vec<u8>,
    read: bool,
    write: bool,
}

impl KeyPattern {
    fn describe(&self) -> String {
        let p = String::from_utf8_lossy(&self.pattern);
        match (self.read, self.write) {
            (true, true) => format!("~{p}"),
            (true, false) => format!("%R~{p}"),
            (false, true) => format!("%W~{p}"),
            (false, false) => format!("%~{p}"),
        }
    }
}

/// Why a command was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    Command,
    /// The argument at this index.
    Key(usize),
    Channel(usize),
}

#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub enabled: bool,
    pub nopass: bool,
    /// `sanitize-payload` (Some(true)) or `skip-sanitize-payload` (Some(false)), if set.
    sanitize: Option<bool>,
    /// SHA-256 hex digests, in the order they were added.
    pub passwords: Vec<String>,
    /// What the rules outside parentheses allow.
    root: Selector,
    /// `(...)` rules, each a selector of its own (Redis 7.0): a command runs when one
    /// selector, the root or another, allows it whole (command, keys and channels).
    selectors: Vec<Selector>,
    /// `acl-pubsub-default allchannels` when the rules were applied: `reset` allows every
    /// channel then, as a new user does.
    pubsub_default_all: bool,
}

/// What one selector allows (Redis's aclSelector): commands, keys and channels.
#[derive(Clone, Debug)]
pub struct Selector {
    /// A bit per table entry.
    allowed: Vec<bool>,
    /// Set by `+@all`, cleared by any command denied since (Redis's ALLCOMMANDS).
    all_commands: bool,
    /// Commands added later would be allowed: `+@all` was the last word on everything.
    future: bool,
    /// `+select|0`: first arguments allowed for a command that is otherwise denied.
    firstargs: BTreeMap<usize, Vec<String>>,
    patterns: Vec<KeyPattern>,
    allkeys: bool,
    channels: Vec<Vec<u8>>,
    allchannels: bool,
}

impl User {
    /// A new user, as `ACL SETUSER` creates one: off, no password, no keys, no channels
    /// (`acl-pubsub-default resetchannels`), no commands.
    pub fn new(name: &str) -> User {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            sanitize: None,
            passwords: Vec::new(),
            root: Selector::new(),
            selectors: Vec::new(),
            pubsub_default_all: false,
        }
    }

    /// A new user under `acl-pubsub-default` (`allchannels`: it may use every channel).
    pub fn with_pubsub_default(name: &str, all_channels: bool) -> User {
        let mut u = User::new(name);
        u.pubsub_default_all = all_channels;
        u.root.allchannels = all_channels;
        u
    }

    /// The default user: `on nopass ~* &* +@all`.
    pub fn default_user() -> User {
        let mut u = User::new("default");
        for op in ["+@all", "~*", "&*", "on", "nopass"] {
            u.apply(op.as_bytes()).expect("valid rule");
        }
        u
    }

    /// Allowed everything: no check is needed.
    pub fn unrestricted(&self) -> bool {
        self.root.unrestricted()
    }

    /// The root selector and the `(...)` ones, in order.
    fn all_selectors(&self) -> impl Iterator<Item = &Selector> {
        std::iter::once(&self.root).chain(&self.selectors)
    }

    /// The rules outside parentheses (ACL GETUSER's top-level fields).
    pub fn root(&self) -> &Selector {
        &self.root
    }

    /// The `(...)` selectors (ACL GETUSER's `selectors`).
    pub fn selectors(&self) -> &[Selector] {
        &self.selectors
    }

    /// Whether some channel allowed to `old` may not be allowed now (Redis's
    /// ACLKillPubsubClientsIfNeeded: unless a selector allows every channel, each of `old`'s
    /// patterns must be among the new ones).
    pub fn channels_narrowed_from(&self, old: &User) -> bool {
        if self.all_selectors().any(|s| s.allchannels) {
            return false;
        }
        old.all_selectors().any(|s| {
            s.allchannels
                || s.channels
                    .iter()
                    .any(|c| !self.all_selectors().any(|n| n.channels.contains(c)))
        })
    }

    /// Whether some selector allows `channel` (a PSUBSCRIBE pattern only literally), as
    /// Redis's ACLUserCheckChannelPerm.
    pub fn may_use_channel(&self, channel: &[u8], is_pattern: bool) -> bool {
        self.all_selectors()
            .any(|s| s.channel_allowed(channel, is_pattern))
    }

    /// May run `c` with read access to every key (`allkeys`, `~*` or `%R~*`) in one selector:
    /// what SORT's BY and GET need, as Redis's ACLUserCheckCmdWithUnrestrictedKeyAccess.
    pub fn reads_every_key(&self, c: &CommandRef, args: &[Bytes]) -> bool {
        self.all_selectors()
            .any(|s| s.reads_every_key() && s.check(c, args).is_ok())
    }

    /// Whether this password authenticates the user (a disabled user never authenticates).
    pub fn accepts(&self, pass: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        if self.nopass {
            return true;
        }
        let hashed = hash_password(pass);
        // Compared in full whatever the first difference, as Redis's time_independent_strcmp.
        self.passwords.iter().any(|p| {
            p.len() == hashed.len()
                && p.bytes()
                    .zip(hashed.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        })
    }

    /// One rule of `ACL SETUSER`; the error is Redis's description of what is wrong.
    pub fn apply(&mut self, op: &[u8]) -> Result<(), &'static str> {
        if op.is_empty() {
            return Ok(());
        }
        let is = |w: &str| op.eq_ignore_ascii_case(w.as_bytes());
        if is("on") {
            self.enabled = true;
        } else if is("off") {
            self.enabled = false;
        } else if is("skip-sanitize-payload") {
            self.sanitize = Some(false);
        } else if is("sanitize-payload") {
            self.sanitize = Some(true);
        } else if is("nopass") {
            self.nopass = true;
            self.passwords.clear();
        } else if is("resetpass") {
            self.nopass = false;
            self.passwords.clear();
        } else if op[0] == b'>' || op[0] == b'#' {
            let hash = rule_hash(op)?;
            if !self.passwords.contains(&hash) {
                self.passwords.push(hash);
            }
            self.nopass = false;
        } else if op[0] == b'<' || op[0] == b'!' {
            let hash = rule_hash(op)?;
            let before = self.passwords.len();
            self.passwords.retain(|p| *p != hash);
            if self.passwords.len() == before {
                return Err("The password you are trying to remove from the user does not exist");
            }
        } else if op[0] == b'(' && op.ends_with(b")") {
            // Its rules split as a command line is (quotes allowed), as Redis's
            // aclCreateSelectorFromOpSet; any wrong rule refuses the whole selector.
            let mut sel = Selector::new();
            // Under `acl-pubsub-default allchannels` a new selector allows every channel too.
            sel.allchannels = self.pubsub_default_all;
            for rule in split_args(&op[1..op.len() - 1]).unwrap_or_default() {
                sel.apply(&rule)?;
            }
            self.selectors.push(sel);
        } else if is("clearselectors") {
            self.selectors.clear();
        } else if is("reset") {
            for r in [
                "resetpass",
                "resetkeys",
                "resetchannels",
                "off",
                "sanitize-payload",
                "clearselectors",
                "-@all",
            ] {
                self.apply(r.as_bytes())?;
            }
            if self.pubsub_default_all {
                self.apply(b"allchannels")?;
            }
        } else {
            self.root.apply(op)?;
        }
        Ok(())
    }

    /// Applies `rules` in order; the first wrong one is named after `what` (Redis's words for
    /// where it came from).
    fn apply_all(&mut self, rules: &[Vec<u8>], what: &str) -> Result<(), String> {
        for r in rules {
            self.apply(r)
                .map_err(|e| format!("{what} '{}': {e}", String::from_utf8_lossy(r)))?;
        }
        Ok(())
    }

    /// Redis's ACLCheckAllUserCommandPerm: allowed when one selector allows it all; else the
    /// most telling denial (a channel over a key over the command, then the later argument).
    pub fn check(&self, c: &CommandRef, args: &[Bytes]) -> Result<(), Denied> {
        let mut worst = Denied::Command;
        for s in self.all_selectors() {
            match s.check(c, args) {
                Ok(()) => return Ok(()),
                Err(d) if d.rank() > worst.rank() => worst = d,
                Err(_) => {}
            }
        }
        Err(worst)
    }

    /// The flags `ACL GETUSER` and `ACL LIST` show, in Redis's order.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut out = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            out.push("nopass");
        }
        match self.sanitize {
            Some(false) => out.push("skip-sanitize-payload"),
            Some(true) => out.push("sanitize-payload"),
            None => {}
        }
        out
    }

    /// The user as `ACL LIST` and an ACL file show it (without the `user <name>` prefix):
    /// flags, passwords, the root selector, then each `(...)` selector.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.flags().into_iter().map(String::from).collect();
        parts.extend(self.passwords.iter().map(|p| format!("#{p}")));
        parts.push(self.root.describe());
        for s in &self.selectors {
            parts.push(format!("({})", s.describe()));
        }
        parts.join(" ")
    }
}

impl Denied {
    /// Redis's order of ACL_DENIED_* codes, then the argument's index.
    fn rank(self) -> (u8, usize) {
        match self {
            Denied::Command => (1, 0),
            Denied::Key(i) => (2, i),
            Denied::Channel(i) => (4, i),
        }
    }
}

impl Selector {
    /// Nothing allowed: no command, no key, no channel.
    fn new() -> Selector {
        Selector {
            allowed: vec![false; table().all.len()],
            all_commands: false,
            future: false,
            firstargs: BTreeMap::new(),
            patterns: Vec::new(),
            allkeys: false,
            channels: Vec::new(),
            allchannels: false,
        }
    }

    fn unrestricted(&self) -> bool {
        self.all_commands && self.allkeys && self.allchannels
    }

    fn reads_every_key(&self) -> bool {
        self.allkeys || self.patterns.iter().any(|p| p.read && p.pattern == b"*")
    }

    fn set_bit(&mut self, id: usize, allow: bool) {
        self.allowed[id] = allow;
        if !allow {
            self.all_commands = false;
        }
    }

    /// Redis's ACLChangeSelectorPerm: the entry and all its subcommands.
    fn change(&mut self, c: &CommandRef, allow: bool) {
        self.set_bit(c.id, allow);
        self.firstargs.remove(&c.id);
        for sub in table().subcommands_of(c) {
            self.set_bit(sub.id, allow);
        }
    }

    /// Redis's ACLSetSelectorCommandBitsForCategory: each entry of the category, a container
    /// with all its subcommands.
    fn change_category(&mut self, cat: usize, allow: bool) {
        for c in commands_in_category(cat) {
            self.change(c, allow);
        }
    }

    fn all(&mut self, allow: bool) {
        self.allowed.iter_mut().for_each(|b| *b = allow);
        self.all_commands = allow;
        self.future = allow;
        self.firstargs.clear();
    }

    /// A rule about commands, keys or channels (Redis's ACLSetSelector); any other is a
    /// syntax error.
    fn apply(&mut self, op: &[u8]) -> Result<(), &'static str> {
        if op.is_empty() {
            return Err(SYNTAX);
        }
        let is = |w: &str| op.eq_ignore_ascii_case(w.as_bytes());
        if is("allkeys") || is("~*") {
            self.allkeys = true;
            self.patterns.clear();
        } else if is("resetkeys") {
            self.allkeys = false;
            self.patterns.clear();
        } else if is("allchannels") || is("&*") {
            self.allchannels = true;
            self.channels.clear();
        } else if is("resetchannels") {
            self.allchannels = false;
            self.channels.clear();
        } else if is("allcommands") || is("+@all") {
            self.all(true);
        } else if is("nocommands") || is("-@all") {
            self.all(false);
        } else if op[0] == b'~' || op[0] == b'%' {
            self.key_pattern(op)?;
        } else if op[0] == b'&' {
            if self.allchannels {
                return Err(
                    "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels",
                );
            }
            let p = &op[1..];
            if has_spaces(p) {
                return Err(SYNTAX);
            }
            if !self.channels.iter().any(|c| c == p) {
                self.channels.push(p.to_vec());
            }
            self.allchannels = false;
        } else if (op[0] == b'+' || op[0] == b'-') && op.get(1) == Some(&b'@') {
            let name = std::str::from_utf8(&op[2..]).map_err(|_| UNKNOWN)?;
            let cat = category_index(name).ok_or(UNKNOWN)?;
            self.change_category(cat, op[0] == b'+');
        } else if op[0] == b'+' {
            self.allow_command(&op[1..])?;
        } else if op[0] == b'-' {
            let c = lookup(&op[1..]).ok_or(UNKNOWN)?;
            self.change(c, false);
        } else {
            return Err(SYNTAX);
        }
        Ok(())
    }

    fn key_pattern(&mut self, op: &[u8]) -> Result<(), &'static str> {
        if self.allkeys {
            return Err(
                "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns",
            );
        }
        let (mut read, mut write) = (false, false);
        let mut offset = 1;
        if op[0] == b'%' {
            loop {
                match op.get(offset).map(u8::to_ascii_uppercase) {
                    Some(b'R') if !read => read = true,
                    Some(b'W') if !write => write = true,
                    Some(b'~') => {
                        offset += 1;
                        break;
                    }
                    // (`%R` alone is an empty pattern, as in Redis.)
                    None => break,
                    _ => return Err(SYNTAX),
                }
                offset += 1;
            }
        } else {
            (read, write) = (true, true);
        }
        let p = &op[offset..];
        if has_spaces(p) {
            return Err(SYNTAX);
        }
        match self.patterns.iter_mut().find(|k| k.pattern == p) {
            Some(k) => {
                k.read |= read;
                k.write |= write;
            }
            None => self.patterns.push(KeyPattern {
                pattern: p.to_vec(),
                read,
                write,
            }),
        }
        Ok(())
    }

    /// `+cmd`, `+cmd|sub`, or `+cmd|firstarg` for a command without subcommands.
    fn allow_command(&mut self, name: &[u8]) -> Result<(), &'static str> {
        let Some(bar) = name.iter().rposition(|&b| b == b'|') else {
            let c = lookup(name).ok_or(UNKNOWN)?;
            self.change(c, true);
            return Ok(());
        };
        let (parent, sub) = (&name[..bar], &name[bar + 1..]);
        let Some(c) = lookup(parent) else {
            return Err(UNKNOWN);
        };
        if c.parent.is_some() {
            return Err("Allowing first-arg of a subcommand is not supported");
        }
        if sub.is_empty() {
            return Err(SYNTAX);
        }
        if c.cmd.subcommands.is_empty() {
            tracing::warn!(
                "Deprecation warning: Allowing a first arg of an otherwise blocked command is a misuse of ACL and may get disabled in the future (offender: +{})",
                String::from_utf8_lossy(name)
            );
            // Kept as written, compared ignoring case (Redis's ACLAddAllowedFirstArg).
            let sub = String::from_utf8_lossy(sub).into_owned();
            let list = self.firstargs.entry(c.id).or_default();
            if !list.iter().any(|a| a.eq_ignore_ascii_case(&sub)) {
                list.push(sub);
            }
        } else {
            let s = table().lookup_sub(c, sub).ok_or(UNKNOWN)?;
            self.change(s, true);
        }
        Ok(())
    }

    /// Redis's ACLSelectorCheckCmd: the command, then its keys, then its channels.
    fn check(&self, c: &CommandRef, args: &[Bytes]) -> Result<(), Denied> {
        if !self.all_commands && c.cmd.flags & flags::NO_AUTH == 0 && !self.allowed[c.id] {
            let idx = if c.parent.is_some() { 2 } else { 1 };
            let first = self.firstargs.get(&c.id).and_then(|list| {
                let arg = std::str::from_utf8(args.get(idx)?).ok()?;
                list.iter().find(|a| a.eq_ignore_ascii_case(arg))
            });
            if first.is_none() {
                return Err(Denied::Command);
            }
        }
        if !self.allkeys {
            for pos in crate::commands::key_positions(c.cmd, args) {
                // A shard channel is a key for routing only: channel rules judge it.
                let Some((read, write)) =
                    crate::commands::introspection::key_access(c.cmd, args, pos)
                else {
                    continue;
                };
                if !self.key_allowed(&args[pos], read, write) {
                    return Err(Denied::Key(pos));
                }
            }
        }
        if !self.allchannels {
            let (from, pattern) = match c.cmd.name {
                "publish" | "spublish" => (1, false),
                "subscribe" | "ssubscribe" => (1, false),
                "psubscribe" => (1, true),
                _ => return Ok(()),
            };
            let upto = if matches!(c.cmd.name, "publish" | "spublish") {
                2.min(args.len())
            } else {
                args.len()
            };
            for (i, ch) in args.iter().enumerate().take(upto).skip(from) {
                if !self.channel_allowed(ch, pattern) {
                    return Err(Denied::Channel(i));
                }
            }
        }
        Ok(())
    }

    fn key_allowed(&self, key: &[u8], read: bool, write: bool) -> bool {
        self.allkeys
            || self.patterns.iter().any(|p| {
                (p.read || !read) && (p.write || !write) && glob_match(&p.pattern, key, false)
            })
    }

    /// A channel name is matched against the user's patterns; a PSUBSCRIBE pattern only
    /// literally (Redis's ACLCheckChannelAgainstList).
    fn channel_allowed(&self, channel: &[u8], is_pattern: bool) -> bool {
        self.allchannels
            || self.channels.iter().any(|p| {
                if is_pattern {
                    p == channel
                } else {
                    glob_match(p, channel, false)
                }
            })
    }

    pub fn keys_rule(&self) -> String {
        if self.allkeys {
            return "~*".into();
        }
        let pats: Vec<String> = self.patterns.iter().map(KeyPattern::describe).collect();
        pats.join(" ")
    }

    pub fn channels_rule(&self) -> String {
        if self.allchannels {
            return "&*".into();
        }
        let chans: Vec<String> = self
            .channels
            .iter()
            .map(|c| format!("&{}", String::from_utf8_lossy(c)))
            .collect();
        chans.join(" ")
    }

    /// The command bits as rules, as Redis's ACLDescribeSelectorCommandRules: `+@all` or
    /// `-@all`, then the categories that fit best, then single commands.
    pub fn commands_rule(&self) -> String {
        let mut rules = Vec::new();
        let mut fake = Selector::new();
        let additive = !self.future;
        if additive {
            rules.push("-@all".to_string());
        } else {
            rules.push("+@all".to_string());
            fake.all(true);
        }
        let mut temp = self.clone();
        let mut applied = [false; CATEGORIES.len()];
        loop {
            let mut best = None;
            let (mut mindiff, mut maxsame) = (usize::MAX, 0);
            for (j, done) in applied.iter().enumerate() {
                if *done {
                    continue;
                }
                // Containers count, as in Redis's ACLCountCategoryBitsForCommands.
                let (mut on, mut off) = (0, 0);
                for c in commands_in_category(j) {
                    if temp.allowed[c.id] {
                        on += 1;
                    } else {
                        off += 1;
                    }
                }
                let (diff, same) = if additive { (off, on) } else { (on, off) };
                if same > diff && (diff < mindiff || (diff == mindiff && same > maxsame)) {
                    best = Some(j);
                    mindiff = diff;
                    maxsame = same;
                }
            }
            let Some(j) = best else { break };
            fake.change_category(j, additive);
            temp.change_category(j, !additive);
            rules.push(format!(
                "{}@{}",
                if additive { '+' } else { '-' },
                CATEGORIES[j]
            ));
            applied[j] = true;
        }
        for c in table().all.iter() {
            let bit = self.allowed[c.id];
            if bit != fake.allowed[c.id] {
                rules.push(format!("{}{}", if bit { '+' } else { '-' }, c.fullname));
                fake.change(c, bit);
            }
            if !bit && let Some(list) = self.firstargs.get(&c.id) {
                for a in list {
                    rules.push(format!("+{}|{a}", c.fullname));
                }
            }
        }
        rules.join(" ")
    }

    /// Keys, channels and commands, as Redis's ACLDescribeSelector.
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        let keys = self.keys_rule();
        if !keys.is_empty() {
            parts.push(keys);
        }
        if self.allchannels {
            parts.push("&*".into());
        } else {
            parts.push("resetchannels".into());
            let chans = self.channels_rule();
            if !chans.is_empty() {
                parts.push(chans);
            }
        }
        parts.push(self.commands_rule());
        parts.join(" ")
    }
}

/// Joins the words of a selector split over several arguments (`(+get` `~key)`, as a shell
/// splits them) with spaces, as Redis's ACLMergeSelectorArguments; `Err(i)`: argument `i`
/// opens a selector that no later argument closes.
pub fn merge_selector_args(args: &[&[u8]]) -> Result<Vec<Vec<u8>>, usize> {
    let mut out = Vec::with_capacity(args.len());
    let mut open: Option<(usize, Vec<u8>)> = None;
    for (i, a) in args.iter().enumerate() {
        // (As Redis: a word that opens a selector starts it again, even inside one.)
        if a.first() == Some(&b'(') && !a.ends_with(b")") {
            open = Some((i, a.to_vec()));
        } else if let Some((_, sel)) = &mut open {
            sel.push(b' ');
            sel.extend_from_slice(a);
            if a.ends_with(b")") {
                out.push(open.take().expect("open").1);
            }
        } else {
            out.push(a.to_vec());
        }
    }
    match open {
        Some((i, _)) => Err(i),
        None => Ok(out),
    }
}

const UNKNOWN: &str = "Unknown command or category name in ACL";
const SYNTAX: &str = "Syntax error";

/// Whether `s` holds a space or a NUL, as Redis's ACLStringHasSpaces (C's `isspace`, which
/// counts the vertical tab that `is_ascii_whitespace` does not).
pub fn has_spaces(s: &[u8]) -> bool {
    s.iter()
        .any(|&b| b.is_ascii_whitespace() || b == 0x0b || b == 0)
}

/// The hash a password rule names: `>pass`/`<pass` hash the password, `#hash`/`!hash` give it.
fn rule_hash(op: &[u8]) -> Result<String, &'static str> {
    match op[0] {
        b'>' | b'<' => Ok(hash_password(&op[1..])),
        _ => valid_hash(&op[1..]),
    }
}

fn valid_hash(h: &[u8]) -> Result<String, &'static str> {
    if h.len() != 64
        || !h
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    {
        return Err(
            "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters",
        );
    }
    Ok(String::from_utf8_lossy(h).into_owned())
}

/// A table entry by `name` or `name|sub`.
fn lookup(name: &[u8]) -> Option<&'static CommandRef> {
    let t = table();
    match name.iter().position(|&b| b == b'|') {
        None => t.lookup(name).filter(|c| c.parent.is_none()),
        Some(i) => {
            let parent = t.lookup(&name[..i])?;
            t.lookup_sub(parent, &name[i + 1..])
        }
    }
}

/// Why an entry is in the ACL log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Command,
    Key,
    Channel,
    Auth,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::Command => "command",
            Reason::Key => "key",
            Reason::Channel => "channel",
            Reason::Auth => "auth",
        }
    }
}

/// Where a denied command came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    TopLevel,
    Multi,
    Lua,
}

impl Context {
    pub fn name(self) -> &'static str {
        match self {
            Context::TopLevel => "toplevel",
            Context::Multi => "multi",
            Context::Lua => "lua",
        }
    }
}

pub struct LogEntry {
    pub count: u64,
    pub reason: Reason,
    pub context: Context,
    pub object: String,
    pub username: String,
    pub ctime_ms: i64,
    pub client_info: String,
}

/// Entries of the same kind within this long of each other are counted as one.
const LOG_GROUPING_MS: i64 = 60_000;

/// `b` without the bytes of `set` at either end (Redis's sdstrim).
fn trim<'a>(mut b: &'a [u8], set: &[u8]) -> &'a [u8] {
    while let [first, rest @ ..] = b
        && set.contains(first)
    {
        b = rest;
    }
    while let [rest @ .., last] = b
        && set.contains(last)
    {
        b = rest;
    }
    b
}

/// The node's users, and the log of denials.
pub struct Acl {
    users: RwLock<BTreeMap<String, Arc<User>>>,
    /// `acl-pubsub-default allchannels`: new users may use every channel.
    pub pubsub_default_all: std::sync::atomic::AtomicBool,
    generation: AtomicU64,
    log: Mutex<VecDeque<LogEntry>>,
}

impl Default for Acl {
    fn default() -> Acl {
        let mut users = BTreeMap::new();
        users.insert("default".to_string(), Arc::new(User::default_user()));
        Acl {
            users: RwLock::new(users),
            pubsub_default_all: Default::default(),
            generation: AtomicU64::new(1),
            log: Mutex::new(VecDeque::new()),
        }
    }
}

impl Acl {
    /// Moves when any user changes: connections re-read their user then.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn get(&self, name: &str) -> Option<Arc<User>> {
        self.users.read().get(name).cloned()
    }

    pub fn default_user(&self) -> Arc<User> {
        self.get("default").expect("the default user always exists")
    }

    pub fn users(&self) -> Vec<Arc<User>> {
        self.users.read().values().cloned().collect()
    }

    /// `ACL SETUSER`: the rules apply to a copy (of the user, or of a new one), which replaces
    /// the user only if every rule is valid.
    pub fn set_user(&self, name: &str, rules: &[&[u8]]) -> Result<(), String> {
        let mut users = self.users.write();
        let rules = merge_selector_args(rules).map_err(|i| {
            format!(
                "Unmatched parenthesis in acl selector starting at '{}'.",
                String::from_utf8_lossy(rules[i])
            )
        })?;
        let all = self.pubsub_default_all.load(Ordering::Relaxed);
        let mut u = match users.get(name) {
            Some(u) => User::clone(u),
            None => User::with_pubsub_default(name, all),
        };
        u.pubsub_default_all = all;
        u.apply_all(&rules, "Error in ACL SETUSER modifier")?;
        users.insert(name.to_string(), Arc::new(u));
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Removes a user (never the default one); whether it existed.
    pub fn delete(&self, name: &str) -> bool {
        if name == "default" {
            return false;
        }
        let gone = self.users.write().remove(name).is_some();
        if gone {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        gone
    }

    /// Replaces every user with those of the ACL file at `path` (Redis's ACLLoadFromFile), or
    /// none of them: see [`Acl::load_text`].
    pub fn load_file(&self, path: &str) -> Result<(), String> {
        let text = std::fs::read(path).map_err(|e| {
            format!(
                "Error loading ACLs, opening file '{path}': {}",
                crate::persist::strerror(&e)
            )
        })?;
        self.load_text(path, &text)
    }

    /// Replaces every user with those `text` defines, one per line as `user <name> <rule>...`
    /// (blank lines skipped; the rules as ACL SETUSER's), or, when any line is wrong, changes
    /// nothing: the error names each problem as `<file>:<line>: ...`, in Redis's words. A file
    /// without `default` gets Redis's default user (`on nopass ~* &* +@all`).
    pub fn load_text(&self, filename: &str, text: &[u8]) -> Result<(), String> {
        let mut users = BTreeMap::new();
        let mut errors = String::new();
        for (i, line) in text.split(|&b| b == b'\n').enumerate() {
            let n = i + 1;
            let line = trim(line, b" \t\r\n");
            if line.is_empty() {
                continue;
            }
            let argv: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
            if argv[0] != b"user" || argv.len() < 2 {
                errors.push_str(&format!(
                    "{filename}:{n} should start with user keyword followed by the username. "
                ));
                continue;
            }
            let name = String::from_utf8_lossy(argv[1]).into_owned();
            if has_spaces(argv[1]) {
                errors.push_str(&format!(
                    "'{filename}:{n}: username '{name}' contains invalid characters. "
                ));
                continue;
            }
            if users.contains_key(&name) {
                errors.push_str(&format!(
                    "WARNING: Duplicate user '{name}' found on line {n}. "
                ));
                continue;
            }
            let mut u =
                User::with_pubsub_default(&name, self.pubsub_default_all.load(Ordering::Relaxed));
            let rules = merge_selector_args(&argv[2..]).unwrap_or_else(|_| {
                errors.push_str(&format!(
                    "{filename}:{n}: Unmatched parenthesis in selector definition."
                ));
                Vec::new()
            });
            let mut syntax_error = false;
            for rule in &rules {
                let rule = trim(rule, b"\t\r\n");
                match u.apply(rule) {
                    Ok(()) => {}
                    // An unknown command is named (it tells no secret); of other errors only
                    // the first is, as it may have caused the rest.
                    Err(e) if e == UNKNOWN => errors.push_str(&format!(
                        "{filename}:{n}: Error in applying operation '{}': {e}. ",
                        String::from_utf8_lossy(rule)
                    )),
                    Err(e) if !syntax_error => {
                        errors.push_str(&format!("{filename}:{n}: {e}. "));
                        syntax_error = true;
                    }
                    Err(_) => {}
                }
            }
            users.insert(name, Arc::new(u));
        }
        if !errors.is_empty() {
            errors.push_str(
                "WARNING: ACL errors detected, no change to the previously active ACL rules was performed",
            );
            return Err(errors);
        }
        users
            .entry("default".to_string())
            .or_insert_with(|| Arc::new(User::default_user()));
        *self.users.write() = users;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Adds the users of the configuration's `user` lines (`<name> <rule>...` each, Redis's
    /// `user` directive), all or none: `default` is reset then given its rules (as Redis's
    /// ACLLoadConfiguredUsers), another name is a new user.
    pub fn add_configured(&self, text: &str) -> Result<(), String> {
        let all = self.pubsub_default_all.load(Ordering::Relaxed);
        let mut users = self.users.write();
        let mut staged = users.clone();
        let mut seen = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let words: Vec<&[u8]> = (line.as_bytes().split(|&b| b == b' '))
                .filter(|w| !w.is_empty())
                .collect();
            let name = String::from_utf8_lossy(words[0]).into_owned();
            if seen.contains(&name) {
                return Err(format!("Duplicate user '{name}' in the user lines"));
            }
            seen.push(name.clone());
            let rules = merge_selector_args(&words[1..]).map_err(|i| {
                format!(
                    "Unmatched parenthesis in acl selector starting at '{}'.",
                    String::from_utf8_lossy(words[1 + i])
                )
            })?;
            let mut u = User::with_pubsub_default(&name, all);
            if name == "default" {
                u.apply(b"reset").expect("reset is a valid rule");
            }
            u.apply_all(&rules, "Error in user declaration")?;
            staged.insert(name, Arc::new(u));
        }
        *users = staged;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// The users as an ACL file (Redis's ACLSaveToFile: `user <name> <rules>` per line, as ACL
    /// LIST shows them).
    pub fn to_file_text(&self) -> String {
        self.users()
            .iter()
            .map(|u| format!("user {} {}\n", u.name, u.describe()))
            .collect()
    }

    /// The user these credentials authenticate.
    pub fn authenticate(&self, name: &[u8], pass: &[u8]) -> Option<Arc<User>> {
        let name = std::str::from_utf8(name).ok()?;
        self.get(name).filter(|u| u.accepts(pass))
    }

    /// `requirepass`: the default user's password (none: `nopass`), as Redis's
    /// ACLUpdateDefaultUserPassword.
    pub fn set_default_password(&self, pass: Option<&str>) {
        let rule = match pass {
            Some(p) if !p.is_empty() => format!(">{p}"),
            _ => "nopass".into(),
        };
        let _ = self.set_user("default", &[b"resetpass", rule.as_bytes()]);
    }

    /// Whether a new connection must authenticate (the default user has a password, or is
    /// off), as Redis's clientSetDefaultAuth.
    pub fn auth_required(&self) -> bool {
        let d = self.default_user();
        !(d.nopass && d.enabled)
    }

    /// Records a denial (Redis's addACLLogEntry), folding it into a recent one of the same kind.
    pub fn log(
        &self,
        reason: Reason,
        context: Context,
        object: String,
        username: String,
        client_info: String,
        max_len: usize,
    ) {
        let now = crate::commands::now_ms();
        let mut log = self.log.lock();
        let found = log.iter().take(10).position(|e| {
            e.reason == reason
                && e.context == context
                && e.object == object
                && e.username == username
                && now - e.ctime_ms <= LOG_GROUPING_MS
        });
        if let Some(i) = found {
            let mut e = log.remove(i).expect("found");
            e.count += 1;
            e.ctime_ms = now;
            e.client_info = client_info;
            log.push_front(e);
            return;
        }
        log.push_front(LogEntry {
            count: 1,
            reason,
            context,
            object,
            username,
            ctime_ms: now,
            client_info,
        });
        log.truncate(max_len);
    }

    pub fn with_log<R>(&self, f: impl FnOnce(&mut VecDeque<LogEntry>) -> R) -> R {
        f(&mut self.log.lock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(rules: &[&str]) -> User {
        let mut u = User::new("u");
        for r in rules {
            u.apply(r.as_bytes()).unwrap();
        }
        u
    }

    fn args(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn check(u: &User, words: &[&str]) -> Result<(), Denied> {
        let a = args(words);
        let c = crate::commands::resolve(&a).unwrap();
        u.check(c, &a)
    }

    #[test]
    fn default_user_is_unrestricted_and_described_as_redis() {
        let d = User::default_user();
        assert!(d.unrestricted());
        assert_eq!(d.describe(), "on nopass ~* &* +@all");
        assert_eq!(User::new("x").describe(), "off resetchannels -@all");
    }

    #[test]
    fn rules_allow_and_deny_commands_keys_and_channels() {
        let u = user(&[
            "on",
            "~foo*",
            "%R~bar*",
            "&ch*",
            "+get",
            "+@hash",
            "-hdel",
            "+set",
            "+publish",
            "+psubscribe",
            "+client|id",
        ]);
        assert_eq!(check(&u, &["GET", "foo1"]), Ok(()));
        assert_eq!(check(&u, &["GET", "bar1"]), Ok(()));
        assert_eq!(check(&u, &["SET", "bar1", "v"]), Err(Denied::Key(1)));
        assert_eq!(check(&u, &["GET", "zzz"]), Err(Denied::Key(1)));
        assert_eq!(check(&u, &["HDEL", "foo", "f"]), Err(Denied::Command));
        assert_eq!(check(&u, &["HSET", "foo", "f", "v"]), Ok(()));
        assert_eq!(check(&u, &["DEL", "foo"]), Err(Denied::Command));
        assert_eq!(check(&u, &["PUBLISH", "chan", "m"]), Ok(()));
        assert_eq!(
            check(&u, &["PUBLISH", "other", "m"]),
            Err(Denied::Channel(1))
        );
        // A PSUBSCRIBE pattern matches an ACL pattern only literally.
        assert_eq!(check(&u, &["PSUBSCRIBE", "ch*"]), Ok(()));
        assert_eq!(check(&u, &["PSUBSCRIBE", "cha*"]), Err(Denied::Channel(1)));
        assert_eq!(check(&u, &["CLIENT", "ID"]), Ok(()));
        assert_eq!(
            check(&u, &["CLIENT", "KILL", "ID", "1"]),
            Err(Denied::Command)
        );
        // AUTH needs no permission.
        assert_eq!(check(&u, &["AUTH", "p"]), Ok(()));
    }

    #[test]
    fn first_args_and_errors() {
        let u = user(&["+select|0"]);
        assert_eq!(check(&u, &["SELECT", "0"]), Ok(()));
        assert_eq!(check(&u, &["SELECT", "1"]), Err(Denied::Command));
        assert!(
            u.root.commands_rule().ends_with("+select|0"),
            "{}",
            u.root.commands_rule()
        );
        let mut u = User::new("u");
        assert_eq!(u.apply(b"+nosuch"), Err(UNKNOWN));
        assert_eq!(u.apply(b"+@nosuch"), Err(UNKNOWN));
        assert_eq!(
            u.apply(b"+config|get|x"),
            Err("Allowing first-arg of a subcommand is not supported")
        );
        assert_eq!(u.apply(b"bogus"), Err(SYNTAX));
        u.apply(b"allkeys").unwrap();
        assert!(
            u.apply(b"~foo")
                .unwrap_err()
                .starts_with("Adding a pattern after the *")
        );
        assert!(u.apply(b"<nope").is_err());
        assert!(
            u.apply(b"#abc")
                .unwrap_err()
                .starts_with("The password hash")
        );
    }

    #[test]
    fn passwords() {
        let mut u = user(&["on", ">secret"]);
        assert!(u.accepts(b"secret"));
        assert!(!u.accepts(b"other"));
        u.apply(b"off").unwrap();
        assert!(!u.accepts(b"secret"));
        assert_eq!(
            hash_password(b"p1"),
            "f64551fcd6f07823cb87971cfb91446425da18286b3ab1ef935e0cbd7a69f68a"
        );
    }

    #[test]
    fn command_rules_are_described_back_by_category() {
        let u = user(&["+@all", "-debug"]);
        assert_eq!(u.root.commands_rule(), "+@all -debug");
        let u = user(&["+@hash", "+get", "-hdel"]);
        assert_eq!(u.root.commands_rule(), "-@all +@hash +get -hdel");
        // Whatever the description, applying it gives the same bits back.
        for rules in [
            &["+@read", "-@keyspace", "+del"][..],
            &["+@all", "-@dangerous", "+config|get"],
            &["+@write", "+@read", "-@stream"],
        ] {
            let u = user(rules);
            let desc = u.root.commands_rule();
            let back = user(&desc.split(' ').collect::<Vec<_>>());
            assert_eq!(back.root.allowed, u.root.allowed, "{rules:?} -> {desc}");
        }
    }
}

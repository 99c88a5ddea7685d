//! The engine: audit entries in, findings out. Pure (no I/O, no clock:
//! time is each entry's own), so a replay of an audit export gives the same
//! findings as the live stream did, and its state is a value that is
//! snapshotted and restored.
//!
//! Memory is bounded per tracked principal (capped sets and histories) and
//! per tracked patient (one activity time each); the numbers are in
//! [`Limits`].

use crate::rules::{Response, RuleCommon, Rules, Severity};
use rxvault_audit::{Action, ActorKind, ExportProtection, LoggedEntry, Outcome};
use rxvault_model::Rid;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
const MINUTE_MS: i64 = 60_000;

/// Caps that bound memory.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Windows of history kept per volume rule per principal (28 days of
    /// hours).
    pub history: usize,
    /// Reads waiting for an explanation per principal; older ones are
    /// decided at once when it is full.
    pub pending: usize,
    /// Sessions with corroborating signals remembered per principal.
    pub sessions: usize,
    /// Source addresses tracked for password spraying.
    pub sources: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            history: 28 * 24,
            pending: 4096,
            sessions: 64,
            sources: 10_000,
        }
    }
}

/// Who an alert is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Principal {
    /// `user`, `service`, `local` or `system`.
    pub kind: String,
    /// The account name or OS user.
    pub id: String,
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind, self.id)
    }
}

/// A rule that fired on an entry. No PHI: patients appear as counts (and
/// record keys, which only the key holder can relate to anyone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The rule (`honeytoken`, `volume_hour`, ...; `corroborated` for
    /// weak signals seen together).
    pub rule: String,
    /// Its severity.
    pub severity: Severity,
    /// What is to be done.
    pub response: Response,
    /// The entry that made it fire.
    pub index: u64,
    /// That entry's time (Unix ms).
    pub time_ms: i64,
    /// Who, if anyone.
    pub principal: Option<Principal>,
    /// Their session.
    pub session: Option<String>,
    /// Their host.
    pub host: Option<String>,
    /// Their address.
    pub source: Option<IpAddr>,
    /// Patients concerned so far (in the rule's window).
    pub patients: u64,
    /// What it says, in words (no PHI).
    pub detail: String,
    /// What incidents group by: findings with the same key in a short time
    /// are one incident.
    pub group: String,
}

/// Counters of what the engine saw (for tuning and the benchmark's
/// explanation rate).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Entries processed.
    pub entries: u64,
    /// Patient accesses (a patient in a read or search entry) decided.
    pub accesses: u64,
    /// Of which explained.
    pub explained: u64,
}

/// A volume rule's window of distinct patients for one principal.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Window {
    /// Which window (time / window length).
    bucket: i64,
    /// Distinct patients in it, up to a cap.
    #[serde(with = "rids")]
    seen: HashSet<Rid>,
    /// Whether it has fired in this window.
    fired: bool,
    /// Counts of earlier windows in which the principal was active.
    history: VecDeque<u32>,
}

/// The seven-day window: each patient's last day.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Week {
    #[serde(with = "rid_map")]
    last_day: HashMap<Rid, i64>,
    day: i64,
    fired_day: Option<i64>,
    /// Seven-day counts taken at each day's end.
    history: VecDeque<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct PrincipalState {
    hour: Window,
    day: Window,
    week: Week,
    /// Reads not explained when made: (patient, time).
    #[serde(with = "rid_times")]
    pending: VecDeque<(Rid, i64)>,
    /// Unexplained patients today.
    unexplained_day: i64,
    #[serde(with = "rids")]
    unexplained: HashSet<Rid>,
    unexplained_fired: bool,
    /// Devices and addresses seen (most recent last).
    hosts: VecDeque<String>,
    sources: VecDeque<IpAddr>,
    /// The last session seen (first-seen is decided once per session).
    last_session: Option<String>,
    /// Corroborating signals per session: (session, rules, fired).
    signals: VecDeque<(String, Vec<String>, bool)>,
    /// Failed sign-ins (times).
    failures: VecDeque<i64>,
    failures_fired_ms: i64,
}

/// Everything the engine remembers: a value, snapshotted with its position.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// The next index to process.
    pub next_index: u64,
    #[serde(with = "pairs")]
    principals: HashMap<Principal, PrincipalState>,
    /// Each patient's last explaining activity (a write of anything of
    /// theirs): Unix ms.
    #[serde(with = "rid_map")]
    activity: HashMap<Rid, i64>,
    /// Failed sign-ins per source: (time, account).
    #[serde(with = "pairs")]
    spray_sources: HashMap<IpAddr, VecDeque<(i64, String)>>,
    spray_all: VecDeque<(i64, String)>,
    spray_fired: HashMap<String, i64>,
    /// What was seen.
    pub stats: Stats,
}

impl State {
    /// Principals tracked.
    pub fn principals(&self) -> usize {
        self.principals.len()
    }

    /// Patients with explaining activity tracked.
    pub fn patients(&self) -> usize {
        self.activity.len()
    }
}

/// The engine: rules, honeytokens, state.
#[derive(Debug)]
pub struct Engine {
    rules: Rules,
    hours: [Option<(u32, u32)>; 7],
    zone: jiff::tz::TimeZone,
    honeytokens: HashSet<Rid>,
    limits: Limits,
    state: State,
    /// The minute last converted to local time, and whether it was open.
    open_cache: (i64, bool),
    /// Whose entries are the detector's own (skipped).
    own_actor: String,
    /// The earliest time a waiting read is due to be decided (nothing to
    /// settle before it).
    next_due_ms: i64,
    /// When waiting reads were last decided: at most once a second of log
    /// time (a decision waits 30 minutes anyway), so a dense stream does
    /// not scan every principal on every entry.
    last_settle_ms: i64,
}

/// The actor id the detector's own audit entries carry (kind system).
pub const DETECTOR_ACTOR: &str = "rxvault-detect";

impl Engine {
    /// An engine with `rules` in the pharmacy's time zone, knowing
    /// `honeytokens`, from `state` (a snapshot or the default).
    pub fn new(
        rules: Rules,
        zone: jiff::tz::TimeZone,
        honeytokens: HashSet<Rid>,
        state: State,
    ) -> Result<Self, String> {
        let hours = rules.hours.spans()?;
        Ok(Self {
            rules,
            hours,
            zone,
            honeytokens,
            limits: Limits::default(),
            state,
            open_cache: (i64::MIN, true),
            own_actor: DETECTOR_ACTOR.into(),
            // Restored waiting reads are looked at on the first settle.
            next_due_ms: i64::MIN,
            last_settle_ms: i64::MIN,
        })
    }

    /// The rules in force.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The state (for a snapshot).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Replaces the honeytoken set.
    pub fn set_honeytokens(&mut self, honeytokens: HashSet<Rid>) {
        self.honeytokens = honeytokens;
    }

    /// Processes one entry; entries before [`State::next_index`] are
    /// skipped (already processed: a redelivery).
    pub fn process(&mut self, e: &LoggedEntry, out: &mut Vec<Finding>) {
        if e.index < self.state.next_index {
            return;
        }
        self.state.next_index = e.index + 1;
        self.state.stats.entries += 1;
        let entry = &e.entry;
        if entry.actor.kind == ActorKind::System && entry.actor.id == self.own_actor {
            return;
        }
        let ctx = Ctx { e, out };
        match &entry.action {
            Action::Read { .. } | Action::Search { .. } => self.access(ctx),
            Action::Write { .. } => {
                // Reads due before this write are decided first (its time
                // replaces the patient's last activity).
                self.settle_all(e.time_ms, ctx.out);
                for p in &entry.patients {
                    self.state.activity.insert(*p, e.time_ms);
                }
            }
            Action::ExportStarted {
                protection,
                export_id: _,
                ..
            } => self.export(ctx, matches!(protection, ExportProtection::Plaintext)),
            Action::AuthFailure { .. } | Action::MfaFailure { .. } => self.failure(ctx),
            Action::BreakGlass { .. } if entry.outcome == Outcome::Success => {
                let r = &self.rules.break_glass;
                fire(
                    ctx,
                    r,
                    "break_glass",
                    0,
                    "emergency access (break-glass) used".into(),
                );
            }
            Action::AuditLogUsed { purpose }
                if purpose == "verify" && entry.outcome == Outcome::Error =>
            {
                let r = &self.rules.audit_failure;
                fire(
                    ctx,
                    r,
                    "audit_failure",
                    0,
                    "the audit log failed verification".into(),
                );
            }
            Action::Alert { kind, .. } => {
                let r = &self.rules.reported;
                let detail = format!("reported: {kind}");
                fire(ctx, r, "reported", 0, detail);
            }
            Action::Backup { operation, .. } if entry.outcome == Outcome::Error => {
                let r = &self.rules.reported;
                let detail = format!("backup {operation} failed");
                fire(ctx, r, "reported", 0, detail);
            }
            _ => {}
        }
    }

    /// Decides every waiting read whose grace has passed by `now_ms` (the
    /// time of the latest entry, or the clock when the stream is idle).
    pub fn tick(&mut self, now_ms: i64, out: &mut Vec<Finding>) {
        self.last_settle_ms = i64::MIN;
        self.settle_all(now_ms, out);
    }

    fn access(&mut self, ctx: Ctx<'_>) {
        let e = ctx.e;
        let entry = &e.entry;
        if entry.patients.is_empty()
            || !matches!(entry.actor.kind, ActorKind::User | ActorKind::Service)
        {
            // Honeytokens catch everyone, the command line included.
            self.honeytoken(ctx);
            return;
        }
        let principal = principal_of(entry);
        let key = principal.to_string();
        let t = e.time_ms;
        let honey = entry.patients.iter().any(|p| self.honeytokens.contains(p));
        let lookback = i64::from(self.rules.unexplained.lookback_days) * DAY_MS;
        let limits = self.limits;
        let rules = &self.rules;
        let grace = i64::from(rules.unexplained.grace_minutes) * MINUTE_MS;
        let ps = self.state.principals.entry(principal.clone()).or_default();
        for p in &entry.patients {
            // Volume (a disabled rule never fires).
            for (name, rule, w) in [
                ("volume_hour", &rules.volume_hour, &mut ps.hour),
                ("volume_day", &rules.volume_day, &mut ps.day),
            ] {
                if let Some((n, why)) = window_add(w, rule, &key, *p, t, limits.history) {
                    ctx.out
                        .push(finding(e, name, rule.severity, rule.response, n, why));
                }
            }
            let week = &rules.volume_week;
            if let Some((n, why)) = week_add(&mut ps.week, week, &key, *p, t) {
                ctx.out.push(finding(
                    e,
                    "volume_week",
                    week.severity,
                    week.response,
                    n,
                    why,
                ));
            }
            // Explanation.
            let explained = self
                .state
                .activity
                .get(p)
                .is_some_and(|&at| t - at <= lookback);
            self.state.stats.accesses += 1;
            if explained {
                self.state.stats.explained += 1;
            } else {
                if ps.pending.len() >= limits.pending {
                    // Full: the oldest is dropped undecided (memory stays
                    // bounded; it counts as neither).
                    ps.pending.pop_front();
                }
                ps.pending.push_back((*p, t));
                self.next_due_ms = self.next_due_ms.min(t + grace);
            }
        }
        if honey {
            self.honeytoken(Ctx { e, out: ctx.out });
        }
        self.corroborating(e, ctx.out);
        self.settle_all(t, ctx.out);
    }

    fn honeytoken(&mut self, ctx: Ctx<'_>) {
        let n = ctx
            .e
            .entry
            .patients
            .iter()
            .filter(|p| self.honeytokens.contains(p))
            .count();
        if n > 0 {
            let r = &self.rules.honeytoken;
            let what = ctx.e.entry.action.kind().name();
            fire(
                ctx,
                r,
                "honeytoken",
                n as u64,
                format!("a honeytoken patient in a {what} entry"),
            );
        }
    }

    fn export(&mut self, ctx: Ctx<'_>, plaintext: bool) {
        let e = ctx.e;
        let n = e.entry.patients.len() as u64;
        let out = ctx.out;
        if e.entry
            .patients
            .iter()
            .any(|p| self.honeytokens.contains(p))
        {
            self.honeytoken(Ctx { e, out });
        }
        if plaintext {
            let r = &self.rules.plaintext_export;
            fire(
                Ctx { e, out },
                r,
                "plaintext_export",
                n,
                format!("a plaintext export of {n} patients"),
            );
        }
        let r = &self.rules.large_export;
        if n >= u64::from(r.patients) {
            fire(
                Ctx { e, out },
                r,
                "large_export",
                n,
                format!("an export of {n} patients"),
            );
        }
    }

    /// Off-hours and first-seen: weak alone, an alert together.
    fn corroborating(&mut self, e: &LoggedEntry, out: &mut Vec<Finding>) {
        let entry = &e.entry;
        if entry.actor.kind != ActorKind::User {
            return;
        }
        let mut signals: Vec<&'static str> = Vec::new();
        if self.rules.off_hours.enabled && !self.open_at(e.time_ms) {
            signals.push("off_hours");
        }
        let principal = principal_of(entry);
        let remember = self.rules.first_seen.remember as usize;
        let ps = self.state.principals.entry(principal).or_default();
        let new_session = entry.session.is_some() && ps.last_session != entry.session;
        if new_session {
            ps.last_session = entry.session.clone();
            let known = !ps.hosts.is_empty() || !ps.sources.is_empty();
            let mut new = false;
            if let Some(h) = entry.host.as_ref().filter(|h| !ps.hosts.contains(h)) {
                new = known;
                push_capped(&mut ps.hosts, h.clone(), remember);
            }
            if let Some(s) = entry.source.filter(|s| !ps.sources.contains(s)) {
                new |= known;
                push_capped(&mut ps.sources, s, remember);
            }
            if new && self.rules.first_seen.enabled {
                signals.push("first_seen");
            }
        }
        let Some(session) = entry.session.clone() else {
            return;
        };
        if signals.is_empty() {
            return;
        }
        let slot = match ps.signals.iter().position(|(s, _, _)| *s == session) {
            Some(i) => i,
            None => {
                if ps.signals.len() >= self.limits.sessions {
                    ps.signals.pop_front();
                }
                ps.signals.push_back((session.clone(), Vec::new(), false));
                ps.signals.len() - 1
            }
        };
        let (_, seen, fired) = &mut ps.signals[slot];
        let mut alone = Vec::new();
        for s in signals {
            if !seen.iter().any(|x| x == s) {
                seen.push(s.to_string());
                let by_itself = match s {
                    "off_hours" => self.rules.off_hours.alone,
                    _ => self.rules.first_seen.alone,
                };
                if by_itself {
                    alone.push(s);
                }
            }
        }
        let together = seen.len() >= 2 && !*fired;
        if together {
            *fired = true;
        }
        let names = seen.join("+");
        for s in alone {
            let (sev, resp) = self.weak(s);
            out.push(finding(e, s, sev, resp, 0, describe_signal(s).into()));
        }
        if together {
            let (s1, r1) = self.weak("off_hours");
            let (s2, r2) = self.weak("first_seen");
            out.push(finding(
                e,
                "corroborated",
                s1.max(s2).max(Severity::High),
                stronger(r1, r2),
                0,
                format!("{names}: a session off-hours from a device or address not seen before"),
            ));
        }
    }

    fn weak(&self, rule: &str) -> (Severity, Response) {
        match rule {
            "off_hours" => (self.rules.off_hours.severity, self.rules.off_hours.response),
            _ => (
                self.rules.first_seen.severity,
                self.rules.first_seen.response,
            ),
        }
    }

    /// Whether the pharmacy is open (with grace) at `t`.
    fn open_at(&mut self, t: i64) -> bool {
        let minute = t.div_euclid(MINUTE_MS);
        if self.open_cache.0 == minute {
            return self.open_cache.1;
        }
        let open = match jiff::Timestamp::from_millisecond(t) {
            Ok(ts) => {
                let z = self.zone.to_datetime(ts);
                let day = z.weekday().to_monday_zero_offset() as usize;
                let m = z.hour() as i64 * 60 + z.minute() as i64;
                let g = i64::from(self.rules.off_hours.grace_minutes);
                let within = |span: Option<(u32, u32)>, shift: i64| {
                    span.is_some_and(|(o, c)| m + shift >= o as i64 - g && m + shift < c as i64 + g)
                };
                // Today's hours, and yesterday's running past midnight
                // with grace.
                within(self.hours[day], 0) || within(self.hours[(day + 6) % 7], 24 * 60)
            }
            Err(_) => true,
        };
        self.open_cache = (minute, open);
        open
    }

    fn failure(&mut self, ctx: Ctx<'_>) {
        let e = ctx.e;
        let t = e.time_ms;
        let account = e.entry.actor.id.clone();
        // Per account.
        let burst = self.rules.credential_burst.clone();
        let window = i64::from(burst.minutes) * MINUTE_MS;
        let ps = self
            .state
            .principals
            .entry(principal_of(&e.entry))
            .or_default();
        ps.failures.push_back(t);
        while ps.failures.front().is_some_and(|&x| t - x > window) {
            ps.failures.pop_front();
        }
        ps.failures.keep_last(burst.failures as usize * 2);
        if burst.enabled
            && ps.failures.len() >= burst.failures as usize
            && t - ps.failures_fired_ms > window
        {
            ps.failures_fired_ms = t;
            let n = ps.failures.len();
            ctx.out.push(finding(
                e,
                "credential_burst",
                burst.severity,
                burst.response,
                0,
                format!(
                    "{n} failed sign-ins for one account within {} min",
                    burst.minutes
                ),
            ));
        }
        // Spraying.
        let spray = self.rules.password_spray.clone();
        if !spray.enabled {
            return;
        }
        let window = i64::from(spray.minutes) * MINUTE_MS;
        let distinct =
            |q: &VecDeque<(i64, String)>| q.iter().map(|(_, a)| a).collect::<HashSet<_>>().len();
        let check = |key: String,
                     q: &mut VecDeque<(i64, String)>,
                     threshold: u32,
                     what: &str,
                     fired: &mut HashMap<String, i64>|
         -> Option<Finding> {
            q.push_back((t, account.clone()));
            while q.front().is_some_and(|(x, _)| t - x > window) {
                q.pop_front();
            }
            q.keep_last(threshold as usize * 8);
            let n = distinct(q);
            if n >= threshold as usize && fired.get(&key).is_none_or(|&at| t - at > window) {
                fired.insert(key.clone(), t);
                return Some(Finding {
                    group: format!("password_spray/{key}"),
                    ..finding(
                        e,
                        "password_spray",
                        spray.severity,
                        spray.response,
                        0,
                        format!(
                            "failed sign-ins for {n} accounts {what} within {} min",
                            spray.minutes
                        ),
                    )
                });
            }
            None
        };
        if let Some(ip) = e.entry.source {
            if !self.state.spray_sources.contains_key(&ip)
                && self.state.spray_sources.len() >= self.limits.sources
            {
                // Forget the quietest address.
                if let Some(old) = self
                    .state
                    .spray_sources
                    .iter()
                    .min_by_key(|(_, q)| q.back().map_or(0, |(x, _)| *x))
                    .map(|(k, _)| *k)
                {
                    self.state.spray_sources.remove(&old);
                }
            }
            let q = self.state.spray_sources.entry(ip).or_default();
            if let Some(f) = check(
                format!("source/{ip}"),
                q,
                spray.accounts_per_source,
                "from one address",
                &mut self.state.spray_fired,
            ) {
                ctx.out.push(f);
            }
        }
        if let Some(f) = check(
            "overall".into(),
            &mut self.state.spray_all,
            spray.accounts_overall,
            "overall",
            &mut self.state.spray_fired,
        ) {
            ctx.out.push(f);
        }
    }

    /// Decides waiting reads older than the grace period, for every
    /// principal with any (cheap: most have none).
    fn settle_all(&mut self, now: i64, out: &mut Vec<Finding>) {
        let grace = i64::from(self.rules.unexplained.grace_minutes) * MINUTE_MS;
        if now < self.next_due_ms || now.saturating_sub(self.last_settle_ms) < 1000 {
            return;
        }
        self.last_settle_ms = now;
        let mut next_due = i64::MAX;
        let rule = self.rules.unexplained.clone();
        let activity = &self.state.activity;
        let stats = &mut self.state.stats;
        for (principal, ps) in self.state.principals.iter_mut() {
            while let Some(&(p, at)) = ps.pending.front() {
                if now - at <= grace {
                    // Decided when its grace has passed (a write may still
                    // explain it).
                    next_due = next_due.min(at + grace);
                    break;
                }
                let explained = activity
                    .get(&p)
                    .is_some_and(|&w| w >= at && w - at <= grace);
                ps.pending.pop_front();
                if explained {
                    stats.explained += 1;
                    continue;
                }
                let day = at.div_euclid(DAY_MS);
                if ps.unexplained_day != day {
                    ps.unexplained_day = day;
                    ps.unexplained.clear();
                    ps.unexplained_fired = false;
                }
                if ps.unexplained.len() < rule.per_day as usize * 4 {
                    ps.unexplained.insert(p);
                }
                if rule.enabled
                    && !ps.unexplained_fired
                    && ps.unexplained.len() >= rule.per_day as usize
                {
                    ps.unexplained_fired = true;
                    out.push(Finding {
                        rule: "unexplained".into(),
                        severity: rule.severity,
                        response: rule.response,
                        index: self.state.next_index.saturating_sub(1),
                        time_ms: now,
                        principal: Some(principal.clone()),
                        session: None,
                        host: None,
                        source: None,
                        patients: ps.unexplained.len() as u64,
                        detail: format!(
                            "{} patients read today whom no prescription, fill, shipment or plan work explains",
                            ps.unexplained.len()
                        ),
                        group: format!("unexplained/{principal}"),
                    });
                }
            }
        }
        self.next_due_ms = next_due;
    }
}

/// Adds a patient to a tumbling window; `Some((count, detail))` when it
/// fires.
fn window_add(
    w: &mut Window,
    rule: &crate::rules::Volume,
    principal: &str,
    p: Rid,
    t: i64,
    history: usize,
) -> Option<(u64, String)> {
    let len = i64::from(rule.window_hours) * HOUR_MS;
    let bucket = t.div_euclid(len);
    if bucket != w.bucket {
        if !w.seen.is_empty() {
            push_capped(&mut w.history, w.seen.len() as u32, history);
        }
        w.bucket = bucket;
        w.seen.clear();
        w.fired = false;
    }
    let floor = floor_of(rule, principal);
    let cap = floor.max(rule.min_count) as usize * 2;
    if w.seen.len() < cap {
        w.seen.insert(p);
    }
    let n = w.seen.len() as u32;
    if w.fired || !rule.enabled {
        return None;
    }
    let why = volume_reason(n, &w.history, rule, floor)?;
    w.fired = true;
    Some((u64::from(n), why))
}

fn week_add(
    w: &mut Week,
    rule: &crate::rules::Volume,
    principal: &str,
    p: Rid,
    t: i64,
) -> Option<(u64, String)> {
    let day = t.div_euclid(DAY_MS);
    let days = ((i64::from(rule.window_hours) + 23) / 24).max(1);
    if day != w.day {
        // A day ended: record the window's count and forget what left it.
        if !w.last_day.is_empty() {
            let n = w.last_day.values().filter(|&&d| d > w.day - days).count() as u32;
            push_capped(&mut w.history, n, 28);
        }
        w.day = day;
        w.last_day.retain(|_, d| *d > day - days);
    }
    let floor = floor_of(rule, principal);
    let cap = floor.max(rule.min_count) as usize * 2;
    if w.last_day.len() < cap || w.last_day.contains_key(&p) {
        w.last_day.insert(p, day);
    }
    let n = w.last_day.len() as u32;
    if !rule.enabled || w.fired_day.is_some_and(|d| day - d < days) {
        return None;
    }
    let why = volume_reason(n, &w.history, rule, floor)?;
    w.fired_day = Some(day);
    Some((u64::from(n), why))
}

/// The floor of `rule` for `principal` (`kind:id`).
fn floor_of(rule: &crate::rules::Volume, principal: &str) -> u32 {
    rule.floors.get(principal).copied().unwrap_or(rule.floor)
}

/// Why `n` distinct patients in a window is too many, if it is (`floor`:
/// the principal's).
pub fn volume_reason(
    n: u32,
    history: &VecDeque<u32>,
    rule: &crate::rules::Volume,
    floor: u32,
) -> Option<String> {
    let window = match rule.window_hours {
        1 => "one hour".to_string(),
        24 => "one day".to_string(),
        168 => "seven days".to_string(),
        h => format!("{h} hours"),
    };
    if n > floor {
        return Some(format!("{n} distinct patients in {window} (floor {floor})"));
    }
    if n < rule.min_count || history.len() < rule.min_history as usize {
        return None;
    }
    let (median, mad) = median_mad(history);
    let z = (f64::from(n) - median) / (1.4826 * mad.max(1.0));
    (z > rule.z).then(|| {
        format!(
            "{n} distinct patients in {window}: robust z {z:.1} against a median of {median:.0}"
        )
    })
}

/// The median and the median absolute deviation.
pub fn median_mad(values: &VecDeque<u32>) -> (f64, f64) {
    let mut v: Vec<f64> = values.iter().map(|&x| f64::from(x)).collect();
    let median = median_of(&mut v);
    let mut dev: Vec<f64> = v.iter().map(|x| (x - median).abs()).collect();
    (median, median_of(&mut dev))
}

fn median_of(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn push_capped<T>(q: &mut VecDeque<T>, x: T, cap: usize) {
    if q.len() >= cap.max(1) {
        q.pop_front();
    }
    q.push_back(x);
}

trait KeepLast {
    fn keep_last(&mut self, keep: usize);
}

impl<T> KeepLast for VecDeque<T> {
    fn keep_last(&mut self, keep: usize) {
        while self.len() > keep.max(1) {
            self.pop_front();
        }
    }
}

fn stronger(a: Response, b: Response) -> Response {
    let rank = |r: Response| match r {
        Response::Alert => 0,
        Response::StepUp => 1,
        Response::EndSession => 2,
        Response::BlockHost => 3,
        Response::DisableAccount => 4,
    };
    if rank(a) >= rank(b) { a } else { b }
}

fn describe_signal(s: &str) -> &'static str {
    match s {
        "off_hours" => "PHI used outside opening hours",
        _ => "a session from a device or address not seen before for this user",
    }
}

struct Ctx<'a> {
    e: &'a LoggedEntry,
    out: &'a mut Vec<Finding>,
}

fn principal_of(entry: &rxvault_audit::Entry) -> Principal {
    Principal {
        kind: entry.actor.kind.name().into(),
        id: entry.actor.id.clone(),
    }
}

fn finding(
    e: &LoggedEntry,
    rule: &str,
    severity: Severity,
    response: Response,
    patients: u64,
    detail: String,
) -> Finding {
    let principal = principal_of(&e.entry);
    Finding {
        rule: rule.into(),
        severity,
        response,
        index: e.index,
        time_ms: e.time_ms,
        group: format!("{rule}/{principal}"),
        principal: Some(principal),
        session: e.entry.session.clone(),
        host: e.entry.host.clone(),
        source: e.entry.source,
        patients,
        detail,
    }
}

fn fire(ctx: Ctx<'_>, rule: &impl RuleCommon, name: &str, patients: u64, detail: String) {
    let (enabled, severity, response) = rule.common();
    if enabled {
        ctx.out
            .push(finding(ctx.e, name, severity, response, patients, detail));
    }
}

/// A map as a list of pairs (JSON keys must be strings).
mod pairs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::HashMap;
    use std::hash::Hash;

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &HashMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<HashMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Eq + Hash,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

/// Record keys as hex in snapshots.
mod rids {
    use rxvault_model::Rid;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::collections::HashSet;

    pub fn serialize<S: Serializer>(set: &HashSet<Rid>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(set.iter().map(|r| hex::encode(r.0)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<HashSet<Rid>, D::Error> {
        let v: Vec<String> = Vec::deserialize(d)?;
        v.iter()
            .map(|h| super::parse_rid(h).map_err(serde::de::Error::custom))
            .collect()
    }
}

mod rid_map {
    use rxvault_model::Rid;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::collections::HashMap;

    pub fn serialize<S: Serializer>(map: &HashMap<Rid, i64>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(map.iter().map(|(r, t)| (hex::encode(r.0), *t)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<HashMap<Rid, i64>, D::Error> {
        let v: HashMap<String, i64> = HashMap::deserialize(d)?;
        v.iter()
            .map(|(h, t)| Ok((super::parse_rid(h).map_err(serde::de::Error::custom)?, *t)))
            .collect()
    }
}

mod rid_times {
    use rxvault_model::Rid;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::collections::VecDeque;

    pub fn serialize<S: Serializer>(q: &VecDeque<(Rid, i64)>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(q.iter().map(|(r, t)| (hex::encode(r.0), *t)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<VecDeque<(Rid, i64)>, D::Error> {
        let v: Vec<(String, i64)> = Vec::deserialize(d)?;
        v.iter()
            .map(|(h, t)| Ok((super::parse_rid(h).map_err(serde::de::Error::custom)?, *t)))
            .collect()
    }
}

/// A record key from its hex form.
pub fn parse_rid(h: &str) -> Result<Rid, String> {
    let mut b = [0u8; 16];
    hex::decode_to_slice(h, &mut b).map_err(|e| format!("record key {h:?}: {e}"))?;
    Ok(Rid(b))
}

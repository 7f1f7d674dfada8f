//! How many tests run at once: `-j N` (at most N tests), or `-j auto`, which packs tests by the
//! guest vCPUs and memory their machines ask for against what the host has. A test is admitted
//! whole (a cluster's machines boot together) or not at all; one test always runs, even one
//! larger than the budget (the run says so rather than never starting it). Only a test larger
//! than the host itself is refused, before the run starts (`check_host_memory`).

use serde::{Deserialize, Serialize};

/// `-j`: a number of tests, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jobs {
    Fixed(usize),
    Auto,
}

impl std::str::FromStr for Jobs {
    type Err = String;
    fn from_str(s: &str) -> Result<Jobs, String> {
        if s == "auto" {
            return Ok(Jobs::Auto);
        }
        match s.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(Jobs::Fixed(n)),
            _ => Err(format!(
                "`{s}` is not a number of tests (1 or more) or `auto`"
            )),
        }
    }
}

/// Guest vCPUs each host core carries under `-j auto`. TCG guests of these tests are mostly
/// waiting on commands after boot; boots are CPU-bound, and their deadlines stretch with this
/// factor (`Shared::boot_timeout`).
pub const VCPUS_PER_CORE: u32 = 2;

/// Memory `-j auto` leaves to the host: 1 GiB plus a tenth of what is available.
pub fn memory_budget_mib(available_mib: u64) -> u64 {
    available_mib.saturating_sub(1024 + available_mib / 10)
}

/// How many times a waiting test lets later tests start ahead of it (`Budget::pick`).
pub const MAX_PASSED_OVER: u32 = 2;

/// A test not yet started: what it asks for, how many later tests started ahead of it, and
/// how long it is likely to keep its machines busy (`work`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Waiting {
    pub demand: Demand,
    pub passed_over: u32,
    pub work: u32,
}

/// A rough measure of a test's length, for `-j auto`'s start order: one per step, and what
/// costs most under TCG more: an update (download and slot write, ~40 s here) counts 4, a
/// reboot and a machine that boots cold (~15–20 s) 2. Counting updates and reboots alone
/// would rank a test of many `run` steps (the docker tests, 3–4 min here) last.
pub fn work(steps: u32, updates: u32, reboots: u32, cold_machines: u32) -> u32 {
    steps + 3 * updates + reboots + 2 * cold_machines
}

/// What one test's machines ask for together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Demand {
    pub vcpus: u32,
    pub memory_mib: u64,
}

/// The scheduler's limits, recorded in the run's reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// "fixed" (`-j N`) or "auto".
    pub mode: Mode,
    pub max_tests: usize,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub host_cores: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Fixed,
    Auto,
}

impl Budget {
    pub fn new(jobs: Jobs, host_cores: usize, available_mib: u64) -> Budget {
        let host_cores = host_cores.max(1);
        match jobs {
            Jobs::Fixed(n) => Budget {
                mode: Mode::Fixed,
                max_tests: n.max(1),
                vcpus: u32::MAX,
                memory_mib: u64::MAX,
                host_cores,
            },
            Jobs::Auto => Budget {
                mode: Mode::Auto,
                max_tests: usize::MAX,
                vcpus: host_cores as u32 * VCPUS_PER_CORE,
                memory_mib: memory_budget_mib(available_mib),
                host_cores,
            },
        }
    }

    /// Whether `next` may start beside `running`.
    pub fn admits(&self, running: &[Demand], next: Demand) -> bool {
        if running.is_empty() {
            return true;
        }
        let vcpus: u64 = running.iter().map(|d| u64::from(d.vcpus)).sum();
        let memory: u64 = running.iter().map(|d| d.memory_mib).sum();
        running.len() < self.max_tests
            && vcpus + u64::from(next.vcpus) <= u64::from(self.vcpus)
            && memory.saturating_add(next.memory_mib) <= self.memory_mib
    }

    /// The first of `pending` (in plan order) that may start beside `running`. A test that does
    /// not fit may be passed over by later, smaller ones, but only `MAX_PASSED_OVER` times: then
    /// nothing behind it starts until it has (running tests finish and free its slot), so a
    /// cluster test waiting for a larger slot is never starved by single machines.
    pub fn pick(&self, running: &[Demand], pending: &[Waiting]) -> Option<usize> {
        for (i, w) in pending.iter().enumerate() {
            if self.admits(running, w.demand) {
                return Some(i);
            }
            if w.passed_over >= MAX_PASSED_OVER {
                return None;
            }
        }
        None
    }

    /// How many guest vCPUs may compete for each host core (at least 1): what boot deadlines
    /// stretch by. A test's own vCPUs count in full even when they exceed the budget.
    pub fn contention(&self, test_vcpus: u32) -> f64 {
        let load = match self.mode {
            Mode::Fixed => f64::from(test_vcpus) * self.max_tests as f64,
            Mode::Auto => f64::from(test_vcpus.max(self.vcpus)),
        };
        (load / self.host_cores as f64).max(1.0)
    }

    /// Removes and returns the pending item `pick` chooses; when that is not the first, the
    /// first (the test whose turn it is) counts one more pass-over: the one place that
    /// bookkeeping is done. Only the first counts: tests behind it are not waiting for a slot
    /// yet, and counting them too let one early pass-over block every later cluster test for
    /// the rest of the run (the cluster tests then ran one by one, nothing beside them).
    pub fn take<T>(
        &self,
        running: &[Demand],
        pending: &mut std::collections::VecDeque<(T, Waiting)>,
    ) -> Option<T> {
        let waiting: Vec<Waiting> = pending.iter().map(|p| p.1).collect();
        let i = self.pick(running, &waiting)?;
        if i > 0 {
            if let Some((_, first)) = pending.front_mut() {
                first.passed_over += 1;
            }
        }
        pending.remove(i).map(|(item, _)| item)
    }

    /// The order tests are offered in. `-j N` keeps the plan's order; `-j auto` puts the
    /// tests that ask for more vCPUs first (then more memory, then more `work`; otherwise the
    /// plan's order), so clusters start while single machines are left to fill the room
    /// beside them, and short single-machine tests, not a lone cluster or a long scenario,
    /// make the end of the run.
    pub fn start_order<T>(&self, pending: &mut std::collections::VecDeque<(T, Waiting)>) {
        if self.mode == Mode::Auto {
            pending.make_contiguous().sort_by_key(|(_, w)| {
                std::cmp::Reverse((w.demand.vcpus, w.demand.memory_mib, w.work))
            });
        }
    }

    /// For the log and reports: "-j 2" or "-j auto: 4 vCPUs, 18000 MiB on 2 cores".
    pub fn describe(&self) -> String {
        match self.mode {
            Mode::Fixed => format!("-j {}", self.max_tests),
            Mode::Auto => format!(
                "-j auto: {} vCPUs, {} MiB on {} cores",
                self.vcpus, self.memory_mib, self.host_cores
            ),
        }
    }
}

/// MemAvailable from /proc/meminfo, MiB (0 if unreadable).
pub fn available_memory_mib() -> u64 {
    meminfo_mib("MemAvailable:")
}

/// MemTotal from /proc/meminfo, MiB (0 if unreadable).
pub fn total_memory_mib() -> u64 {
    meminfo_mib("MemTotal:")
}

fn meminfo_mib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

/// Refuses a test whose machines together ask for more memory than the host could ever give
/// it: MemTotal less the reserve `-j auto` keeps (`memory_budget_mib`). A test that fits that
/// but not what is free now still runs (alone if need be, see `Budget::admits`). `machines` are
/// (name, MiB); an unknown MemTotal (0) refuses nothing.
pub fn check_host_memory(
    test: &str,
    machines: &[(String, u64)],
    total_mib: u64,
) -> Result<(), String> {
    let asked: u64 = machines.iter().map(|(_, m)| m).sum();
    let limit = memory_budget_mib(total_mib);
    if total_mib == 0 || asked <= limit {
        return Ok(());
    }
    let each: Vec<String> = machines.iter().map(|(n, m)| format!("{n} {m}")).collect();
    Err(format!(
        "aviary: test {test} asks for {asked} MiB of guest memory ({} MiB), more than this host can ever give one test: {limit} MiB (MemTotal {total_mib} MiB less a reserve of {} MiB); refusing it before booting anything\n  hint: lower its machines' `memory:` or run it on a host with more memory",
        each.join(", "),
        total_mib - limit
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(vcpus: u32, memory_mib: u64) -> Demand {
        Demand { vcpus, memory_mib }
    }

    fn w(vcpus: u32, memory_mib: u64, passed_over: u32) -> Waiting {
        Waiting {
            demand: d(vcpus, memory_mib),
            passed_over,
            work: 0,
        }
    }

    /// Starts what `take` takes, finishes the oldest running test when nothing fits; returns
    /// the start order (plan indices) and checks the budget and the passed-over limit each time.
    fn simulate(b: &Budget, plan: &[Demand]) -> Result<Vec<usize>, TestCaseError> {
        let pending = plan
            .iter()
            .enumerate()
            .map(|(i, &demand)| {
                (
                    i,
                    Waiting {
                        demand,
                        passed_over: 0,
                        work: 0,
                    },
                )
            })
            .collect();
        simulate_from(b, plan, pending).map(|(order, _)| order)
    }

    /// `simulate` from a pending list already in its start order; also returns what was
    /// running each time a test finished.
    fn simulate_from(
        b: &Budget,
        plan: &[Demand],
        mut pending: std::collections::VecDeque<(usize, Waiting)>,
    ) -> Result<(Vec<usize>, Vec<Vec<Demand>>), TestCaseError> {
        let mut running: Vec<Demand> = Vec::new();
        let mut order = Vec::new();
        let mut at_finish = Vec::new();
        while !pending.is_empty() {
            match b.take(&running, &mut pending) {
                Some(at) => {
                    prop_assert!(pending.iter().all(|p| p.1.passed_over <= MAX_PASSED_OVER));
                    order.push(at);
                    running.push(plan[at]);
                    if running.len() > 1 {
                        let v: u32 = running.iter().map(|d| d.vcpus).sum();
                        let m: u64 = running.iter().map(|d| d.memory_mib).sum();
                        prop_assert!(v <= b.vcpus && m <= b.memory_mib);
                    }
                }
                None => {
                    prop_assert!(!running.is_empty());
                    at_finish.push(running.clone());
                    running.remove(0);
                }
            }
        }
        Ok((order, at_finish))
    }

    #[test]
    fn a_cluster_test_starts_after_at_most_two_later_tests() {
        // The -j auto run that starved: 2 cores (4 vCPUs), a 2-node test (4 vCPUs) behind a
        // single-machine test, and many single-machine tests after it.
        let b = Budget::new(Jobs::Auto, 2, 24 * 1024);
        let mut plan = vec![d(2, 1024), d(4, 2048)];
        plan.extend(std::iter::repeat_n(d(2, 1024), 8));
        let order = simulate(&b, &plan).unwrap();
        let cluster = order.iter().position(|&i| i == 1).unwrap();
        assert_eq!(&order[..cluster + 1], &[0, 2, 3, 1], "{order:?}");
    }

    #[test]
    fn only_the_test_whose_turn_it_is_counts_a_pass_over() {
        let b = Budget::new(Jobs::Auto, 2, 24 * 1024);
        let mut pending: std::collections::VecDeque<(char, Waiting)> = [
            ('a', w(3, 1024, 0)),
            ('b', w(3, 1024, 0)),
            ('c', w(1, 1024, 0)),
        ]
        .into();
        // A 2-vCPU test runs: neither 3-vCPU test fits beside it, the single machine does.
        assert_eq!(b.take(&[d(2, 1024)], &mut pending), Some('c'));
        let counts: Vec<u32> = pending.iter().map(|p| p.1.passed_over).collect();
        assert_eq!(counts, [1, 0]);
    }

    #[test]
    fn a_single_machine_runs_beside_each_cluster_test() {
        // Today's mission plan under -j auto with one vCPU per machine, in start order: four
        // cluster tests (3, 2, 3, 3 vCPUs and a 2-node test) and single machines. Before, the
        // singles that started early had used up every cluster test's pass-overs, and the
        // clusters ran one at a time with nothing beside them.
        let b = Budget::new(Jobs::Auto, 2, 24 * 1024);
        let mut plan = vec![d(1, 1024); 3];
        plan.extend([d(2, 2048), d(3, 3072), d(2, 2048), d(3, 3072), d(3, 3072)]);
        plan.extend(vec![d(1, 1024); 10]);
        let mut pending: std::collections::VecDeque<(usize, Waiting)> = plan
            .iter()
            .enumerate()
            .map(|(i, &demand)| (i, w(demand.vcpus, demand.memory_mib, 0)))
            .collect();
        b.start_order(&mut pending);
        let offered: Vec<usize> = pending.iter().map(|p| p.0).collect();
        assert_eq!(
            &offered[..5],
            &[4, 6, 7, 3, 5],
            "clusters first, largest first"
        );
        // Each 3-vCPU cluster has a single machine beside it.
        let (_, at_finish) = simulate_from(&b, &plan, pending).unwrap();
        let beside = at_finish
            .iter()
            .filter(|r| r.iter().any(|d| d.vcpus == 3) && r.iter().any(|d| d.vcpus == 1))
            .count();
        assert!(
            beside >= 3,
            "a single machine ran beside {beside} cluster tests"
        );
    }

    #[test]
    fn auto_offers_longer_tests_of_one_size_first() {
        let b = Budget::new(Jobs::Auto, 2, 24 * 1024);
        let t = |i: usize, vcpus, work| {
            (
                i,
                Waiting {
                    work,
                    ..w(vcpus, 1024 * u64::from(vcpus), 0)
                },
            )
        };
        // A refused payload (update only), a docker test (13 run steps), an update with three
        // reboots, a cold provisioning test, a 3-node cluster.
        let mut pending: std::collections::VecDeque<(usize, Waiting)> = [
            t(0, 1, work(3, 1, 0, 0)),
            t(1, 1, work(13, 0, 0, 0)),
            t(2, 1, work(15, 1, 3, 0)),
            t(3, 1, work(2, 0, 0, 1)),
            t(4, 3, work(20, 0, 0, 0)),
        ]
        .into();
        b.start_order(&mut pending);
        assert_eq!(
            pending.iter().map(|p| p.0).collect::<Vec<_>>(),
            [4, 2, 1, 0, 3]
        );
    }

    #[test]
    fn fixed_keeps_the_plan_order() {
        let b = Budget::new(Jobs::Fixed(2), 2, 24 * 1024);
        let mut pending: std::collections::VecDeque<(usize, Waiting)> =
            [(0, w(1, 1024, 0)), (1, w(3, 3072, 0))].into();
        b.start_order(&mut pending);
        assert_eq!(pending.iter().map(|p| p.0).collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn jobs_parse_numbers_and_auto() {
        assert_eq!("auto".parse::<Jobs>(), Ok(Jobs::Auto));
        assert_eq!("3".parse::<Jobs>(), Ok(Jobs::Fixed(3)));
        for bad in ["0", "-1", "many", ""] {
            let e = bad.parse::<Jobs>().unwrap_err();
            assert!(e.contains("or `auto`"), "{e}");
        }
    }

    #[test]
    fn fixed_counts_tests_and_ignores_size() {
        let b = Budget::new(Jobs::Fixed(2), 2, 1000);
        assert!(b.admits(&[d(6, 3072)], d(6, 3072)));
        assert!(!b.admits(&[d(2, 1024), d(2, 1024)], d(2, 1024)));
        assert_eq!(b.contention(2), 2.0);
        assert_eq!(b.describe(), "-j 2");
    }

    #[test]
    fn auto_packs_by_vcpus_and_memory_and_places_a_cluster_whole() {
        // 2 cores -> 4 vCPUs; 24 GiB available.
        let b = Budget::new(Jobs::Auto, 2, 24 * 1024);
        assert_eq!(b.vcpus, 4);
        assert!(b.admits(&[d(2, 1024)], d(2, 1024)));
        assert!(!b.admits(&[d(2, 1024), d(2, 1024)], d(2, 1024)));
        // A 3-node cluster (6 vCPUs) never starts beside anything, and alone it runs anyway.
        assert!(!b.admits(&[d(2, 1024)], d(6, 3072)));
        assert!(b.admits(&[], d(6, 3072)));
        // First fit: the single machine behind the cluster goes first ...
        assert_eq!(
            b.pick(&[d(2, 1024)], &[w(6, 3072, 0), w(2, 1024, 0)]),
            Some(1)
        );
        assert_eq!(b.pick(&[d(2, 1024), d(2, 1024)], &[w(2, 1024, 0)]), None);
        // ... until the cluster has been passed over MAX_PASSED_OVER times: then it waits for
        // the running test to finish, and nothing starts ahead of it.
        let behind = [w(6, 3072, MAX_PASSED_OVER), w(2, 1024, 0)];
        assert_eq!(b.pick(&[d(2, 1024)], &behind), None);
        assert_eq!(b.pick(&[], &behind), Some(0));
        // Memory binds too.
        let small = Budget::new(Jobs::Auto, 16, 4096);
        assert_eq!(small.memory_mib, 4096 - 1024 - 409);
        assert!(!small.admits(&[d(2, 2048)], d(2, 1024)));
        assert_eq!(b.contention(2), 2.0);
        assert_eq!(b.contention(6), 3.0);
        assert!(b.describe().starts_with("-j auto: 4 vCPUs"));
    }

    #[test]
    fn meminfo_is_read() {
        assert!(available_memory_mib() > 0);
        assert!(total_memory_mib() >= available_memory_mib());
    }

    #[test]
    fn a_test_larger_than_the_host_is_refused_and_one_larger_than_the_budget_is_not() {
        let m = |n: &str, mib| (n.to_string(), mib);
        // 24 GiB host: 24576 - 1024 - 2457 = 21095 MiB for one test.
        let total = 24 * 1024;
        let big = [m("a", 16384), m("b", 16384), m("c", 16384)];
        let e = check_host_memory("cluster::big", &big, total).unwrap_err();
        assert!(
            e.starts_with("aviary: test cluster::big asks for 49152 MiB"),
            "{e}"
        );
        assert!(e.contains("(a 16384, b 16384, c 16384 MiB)"), "{e}");
        assert!(
            e.contains("21095 MiB (MemTotal 24576 MiB less a reserve of 3481 MiB)"),
            "{e}"
        );
        assert!(e.contains("hint: lower its machines' `memory:`"), "{e}");
        // Exactly the limit fits; one MiB more does not.
        assert!(check_host_memory("t", &[m("a", 21095)], total).is_ok());
        assert!(check_host_memory("t", &[m("a", 21096)], total).is_err());
        // Fits MemTotal but not today's free memory: not refused here; `-j auto` runs it alone.
        let fits = [m("a", 8192), m("b", 8192)];
        assert!(check_host_memory("t", &fits, total).is_ok());
        let b = Budget::new(Jobs::Auto, 2, 8 * 1024);
        assert!(b.admits(&[], d(4, 16384)));
        // MemTotal unknown: nothing is refused.
        assert!(check_host_memory("t", &big, 0).is_ok());
    }

    proptest! {
        /// Whatever the plan, an auto schedule never goes over its budget beside another test,
        /// always starts something when nothing runs, starts every test, and lets no test be
        /// passed over more than MAX_PASSED_OVER times while it is first in line.
        #[test]
        fn auto_never_overcommits_or_starves(
            cores in 1usize..8,
            mem in 2048u64..65536,
            plan in proptest::collection::vec((1u32..7, 256u64..4096), 1..20),
        ) {
            let b = Budget::new(Jobs::Auto, cores, mem);
            let plan: Vec<Demand> = plan.iter().map(|&(c, m)| d(c, m)).collect();
            let order = simulate(&b, &plan)?;
            let mut sorted = order.clone();
            sorted.sort_unstable();
            prop_assert_eq!(&sorted, &(0..plan.len()).collect::<Vec<_>>());
            // The same in -j auto's start order.
            let mut pending = plan
                .iter()
                .enumerate()
                .map(|(i, &demand)| (i, Waiting { demand, passed_over: 0, work: i as u32 % 5 }))
                .collect();
            b.start_order(&mut pending);
            let (mut order, _) = simulate_from(&b, &plan, pending)?;
            order.sort_unstable();
            prop_assert_eq!(order, sorted);
        }
    }
}

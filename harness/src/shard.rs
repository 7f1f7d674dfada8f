//! `--shard i/n`: one of n disjoint parts of a plan, for CI machines that split a run.
//!
//! The split is round-robin over the plan sorted by `suite::test`: the k-th id in sorted order
//! (k from 0) belongs to shard `k mod n + 1`. Round-robin rather than a hash of the id because
//! plans are small (tens of tests, each minutes long): a hash leaves shards unbalanced and often
//! empty, round-robin keeps sizes within one of each other. It is deterministic for a given
//! plan; every machine of a CI job must therefore select the same plan (same suites, filter
//! and images), which a CI matrix does. A job is one test with all its machines, so a cluster
//! test is never split across shards.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Shard {
    /// 1-based.
    pub index: u32,
    pub count: u32,
}

/// Why a `--shard` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--shard `{value}`: {why}; expected I/N with 1 ≤ I ≤ N, e.g. --shard 2/3")]
pub struct ShardParseError {
    pub value: String,
    pub why: String,
}

impl FromStr for Shard {
    type Err = ShardParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why: &str| ShardParseError {
            value: s.to_string(),
            why: why.to_string(),
        };
        let (i, n) = s.split_once('/').ok_or_else(|| err("no `/`"))?;
        let index: u32 = i.trim().parse().map_err(|_| err("I is not a number"))?;
        let count: u32 = n.trim().parse().map_err(|_| err("N is not a number"))?;
        if count == 0 {
            return Err(err("N must be at least 1"));
        }
        if index == 0 {
            return Err(err("shards are numbered from 1"));
        }
        if index > count {
            return Err(err("I is greater than N"));
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl From<Shard> for String {
    fn from(s: Shard) -> String {
        s.to_string()
    }
}

impl TryFrom<String> for Shard {
    type Error = ShardParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl Shard {
    /// The items of this shard, in their original order; `id` gives each its `suite::test`.
    pub fn select<T>(self, items: Vec<T>, id: impl Fn(&T) -> String) -> Vec<T> {
        let mut order: Vec<(String, usize)> =
            items.iter().enumerate().map(|(k, t)| (id(t), k)).collect();
        order.sort();
        let mut mine = vec![false; items.len()];
        for (rank, (_, k)) in order.iter().enumerate() {
            mine[*k] = rank as u64 % u64::from(self.count) == u64::from(self.index - 1);
        }
        items
            .into_iter()
            .zip(mine)
            .filter_map(|(t, m)| m.then_some(t))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!("2/3".parse(), Ok(Shard { index: 2, count: 3 }));
        assert_eq!("1/1".parse(), Ok(Shard { index: 1, count: 1 }));
        for (bad, why) in [
            ("0/0", "N must be at least 1"),
            ("0/3", "numbered from 1"),
            ("4/3", "greater than N"),
            ("a/3", "I is not a number"),
            ("1/b", "N is not a number"),
            ("-1/3", "I is not a number"),
            ("3", "no `/`"),
        ] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.starts_with(&format!("--shard `{bad}`: ")), "{e}");
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.contains("expected I/N"), "{e}");
        }
    }

    #[test]
    fn serializes_as_i_slash_n() {
        let s = Shard { index: 2, count: 3 };
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"2/3\"");
        assert_eq!(serde_json::from_str::<Shard>("\"2/3\"").unwrap(), s);
        assert!(serde_json::from_str::<Shard>("\"4/3\"").is_err());
    }

    #[test]
    fn round_robin_over_sorted_ids_keeps_original_order() {
        let plan: Vec<String> = ["s::d", "s::a", "t::a", "s::c", "s::b"]
            .map(String::from)
            .to_vec();
        let pick = |i| Shard { index: i, count: 2 }.select(plan.clone(), |t| t.clone());
        // sorted: s::a s::b s::c s::d t::a → shard 1 takes ranks 0, 2, 4.
        assert_eq!(pick(1), ["s::a", "t::a", "s::c"]);
        assert_eq!(pick(2), ["s::d", "s::b"]);
    }

    proptest! {
        #[test]
        fn shards_are_disjoint_and_cover_the_plan(
            ids in proptest::collection::btree_set("[a-c]{1,3}::[a-e]{1,4}", 0..40),
            count in 1u32..8,
        ) {
            // A plan in some non-sorted order, each item tagged with its position.
            let plan: Vec<(usize, String)> = ids.into_iter().rev().enumerate().collect();
            let mut seen = vec![0u32; plan.len()];
            let mut sizes = Vec::new();
            for index in 1..=count {
                let part = Shard { index, count }.select(plan.clone(), |t| t.1.clone());
                prop_assert!(part.windows(2).all(|w| w[0].0 < w[1].0), "original order kept");
                sizes.push(part.len());
                for (k, _) in part {
                    seen[k] += 1;
                }
            }
            prop_assert!(seen.iter().all(|&c| c == 1), "every test in exactly one shard");
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            prop_assert!(hi - lo <= 1, "balanced: {sizes:?}");
            // Deterministic.
            let again = Shard { index: 1, count }.select(plan.clone(), |t| t.1.clone());
            prop_assert_eq!(again, Shard { index: 1, count }.select(plan, |t| t.1.clone()));
        }
    }
}

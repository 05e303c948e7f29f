//! The decision process of RFC 4271 §9.1.2.2, for a route server whose peers are all external.
//!
//! Steps, each keeping only the candidates that survive it:
//!
//! 1. highest degree of preference (LOCAL_PREF: not carried on eBGP, so 100 for every route);
//! 2. shortest AS_PATH (an AS_SET counts one, confederation segments none);
//! 3. lowest ORIGIN (IGP < EGP < INCOMPLETE);
//! 4. MULTI_EXIT_DISC, compared only between routes from the same neighboring AS (a missing
//!    MED is the lowest value, RFC 4271 §9.1.2.2 c);
//! 5. eBGP over iBGP and 6. IGP cost to the next hop: equal for every route here;
//! 7. lowest BGP Identifier of the advertising peer;
//! 8. lowest peer address.
//!
//! The candidates left after step 6 form the multipath (ECMP) set: paths equal up to the
//! tie-breakers (SPEC §3). Steps 7–8 only pick which of them is "best" for export.

use std::net::{IpAddr, Ipv4Addr};

use bgp::wire::{Origin, PathAttributes};

/// What the decision process needs to know about one candidate path.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    pub attrs: &'a PathAttributes,
    pub peer_router_id: Ipv4Addr,
    pub peer_address: IpAddr,
}

fn as_path_len(a: &PathAttributes) -> usize {
    a.as_path.as_ref().map_or(0, |p| p.path_len())
}
fn origin_rank(a: &PathAttributes) -> u8 {
    a.origin.unwrap_or(Origin::Incomplete) as u8
}
fn neighbor_as(a: &PathAttributes) -> Option<u32> {
    a.as_path.as_ref().and_then(|p| p.first_asn())
}
fn local_pref(a: &PathAttributes) -> u32 {
    a.local_pref.unwrap_or(100)
}

/// Runs the decision process over `cands` (at least one). Returns the index of the best path
/// and sets `multipath` to the indices of the ECMP set (which contains the best).
pub fn decide(cands: &[Candidate<'_>], multipath: &mut Vec<usize>) -> usize {
    multipath.clear();
    if cands.len() == 1 {
        multipath.push(0);
        return 0;
    }
    multipath.extend(0..cands.len());
    keep_best(multipath, |i| std::cmp::Reverse(local_pref(cands[i].attrs)));
    keep_best(multipath, |i| as_path_len(cands[i].attrs));
    keep_best(multipath, |i| origin_rank(cands[i].attrs));
    // MED: drop a route when another survivor from the same neighbor AS has a lower MED.
    let survivors = multipath.clone();
    multipath.retain(|&i| {
        let (asn, med) = (neighbor_as(cands[i].attrs), cands[i].attrs.med.unwrap_or(0));
        !survivors
            .iter()
            .any(|&j| neighbor_as(cands[j].attrs) == asn && cands[j].attrs.med.unwrap_or(0) < med)
    });
    *multipath
        .iter()
        .min_by_key(|&&i| (u32::from(cands[i].peer_router_id), cands[i].peer_address))
        .unwrap_or(&0)
}

/// Keeps the indices with the smallest key.
fn keep_best<K: Ord>(set: &mut Vec<usize>, key: impl Fn(usize) -> K) {
    if let Some(min) = set.iter().map(|&i| key(i)).min() {
        set.retain(|&i| key(i) == min);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgp::wire::AsPath;

    fn attrs(path: &[u32], med: Option<u32>, origin: Origin) -> PathAttributes {
        PathAttributes {
            origin: Some(origin),
            as_path: Some(AsPath::from_sequence(path.to_vec())),
            next_hop: Some(Ipv4Addr::new(10, 1, 0, 100)),
            med,
            ..Default::default()
        }
    }

    fn cand(a: &PathAttributes, id: u8) -> Candidate<'_> {
        Candidate {
            attrs: a,
            peer_router_id: Ipv4Addr::new(10, 0, 0, id),
            peer_address: Ipv4Addr::new(10, 1, 2, id).into(),
        }
    }

    #[test]
    fn shorter_as_path_wins_and_equal_paths_form_ecmp() {
        let active = attrs(&[65001], None, Origin::Igp);
        let standby = attrs(&[65001, 65001, 65001], None, Origin::Igp);
        let other = attrs(&[65002], None, Origin::Igp);
        let c = [cand(&standby, 1), cand(&active, 2), cand(&other, 3)];
        let mut mp = vec![];
        assert_eq!(decide(&c, &mut mp), 1);
        assert_eq!(mp, vec![1, 2], "equal up to router id: ECMP");
    }

    #[test]
    fn origin_then_router_id() {
        let a = attrs(&[65001], None, Origin::Incomplete);
        let b = attrs(&[65002], None, Origin::Igp);
        let mut mp = vec![];
        assert_eq!(decide(&[cand(&a, 1), cand(&b, 2)], &mut mp), 1);
        let a = attrs(&[65001], None, Origin::Igp);
        assert_eq!(
            decide(&[cand(&b, 2), cand(&a, 1)], &mut mp),
            1,
            "lower router id"
        );
    }

    #[test]
    fn med_only_within_the_same_neighbor_as() {
        let a = attrs(&[65001], Some(10), Origin::Igp);
        let b = attrs(&[65001], Some(5), Origin::Igp);
        let c = attrs(&[65002], Some(100), Origin::Igp);
        let mut mp = vec![];
        let best = decide(&[cand(&a, 1), cand(&b, 2), cand(&c, 3)], &mut mp);
        // a loses to b (same AS); c is not compared with them.
        assert_eq!(mp, vec![1, 2]);
        assert_eq!(best, 1);
    }
}

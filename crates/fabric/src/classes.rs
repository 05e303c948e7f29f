//! The distinct ways the fabric holds BGP routes. A class is one combination of "instance I has
//! next hops N" (its key), the union of those next hops, and how that union resolves in each
//! network that receives BGP routes. Every prefix with the same key shares one class, so a
//! prefix costs the fabric one map entry and a 4-octet index; a class lives while some prefix
//! refers to it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::table::{NextHopType, Prefix, Route, RouteSource, RouteState};
use crate::Invalid;

pub(crate) type ClassId = u32;

/// Per instance (by index, ascending), its forwarding next hops (sorted, distinct).
pub(crate) type Key = Vec<(u16, Arc<[IpAddr]>)>;

/// How a class's next hops resolve in one network: everything of its effective route but the
/// prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub state: RouteState,
    pub next_hop_ips: Vec<IpAddr>,
    pub load_balancer: Option<String>,
    pub reason: Option<String>,
    /// The next hops that cannot be programmed, as data (the reason is their text).
    pub invalid: Vec<Invalid>,
}

impl Resolved {
    pub fn route(&self, prefix: Prefix) -> Route {
        Route {
            source: RouteSource::VirtualNetworkGateway,
            state: self.state,
            prefix,
            next_hop_type: NextHopType::VirtualNetworkGateway,
            next_hop_ips: self.next_hop_ips.clone(),
            load_balancer: self.load_balancer.clone(),
            reason: self.reason.clone(),
        }
    }
}

pub(crate) struct Class {
    key: Key,
    pub union: Arc<[IpAddr]>,
    /// One per receiving network, in `Fabric::receivers` order.
    pub resolved: Vec<Arc<Resolved>>,
    /// Prefixes that refer to it.
    refs: u32,
}

#[derive(Default)]
pub(crate) struct Classes {
    slots: Vec<Option<Class>>,
    free: Vec<ClassId>,
    index: HashMap<Key, ClassId>,
    /// Instance names, by the index keys use.
    instances: Vec<String>,
    /// The last step taken: (class before, instance, its next hops) led to this class. A batch
    /// of routes from one peer has the same next hops throughout, so most steps repeat the last
    /// one and skip building and hashing a key. Cleared when a class is freed (ids are reused).
    memo: Option<(Option<ClassId>, u16, Vec<IpAddr>, ClassId)>,
}

/// The union of a key's next hops, sorted.
pub(crate) fn union(key: &Key) -> Arc<[IpAddr]> {
    if let [(_, only)] = key.as_slice() {
        return only.clone();
    }
    let mut v: Vec<IpAddr> = key.iter().flat_map(|(_, n)| n.iter().copied()).collect();
    v.sort();
    v.dedup();
    v.into()
}

impl Classes {
    fn instance(&self, name: &str) -> Option<u16> {
        self.instances
            .iter()
            .position(|n| n == name)
            .map(|i| i as u16)
    }

    /// The key of `old` with `instance`'s next hops replaced by `next_hops` (none: removed);
    /// None when no instance has any left.
    pub fn key_with(
        &mut self,
        old: Option<ClassId>,
        instance: &str,
        next_hops: &[IpAddr],
    ) -> Option<Key> {
        let i = match self.instance(instance) {
            Some(i) => i,
            None => {
                self.instances.push(instance.to_string());
                (self.instances.len() - 1) as u16
            }
        };
        let mut key: Key = old.map(|c| self.get(c).key.clone()).unwrap_or_default();
        key.retain(|(j, _)| *j != i);
        if !next_hops.is_empty() {
            let mut nh = next_hops.to_vec();
            nh.sort();
            nh.dedup();
            // Most prefixes share their next hops with the key they had: reuse its allocation.
            let set: Arc<[IpAddr]> = match old
                .and_then(|c| self.get(c).key.iter().find(|(j, _)| *j == i))
                .filter(|(_, n)| **n == *nh)
            {
                Some((_, n)) => n.clone(),
                None => nh.into(),
            };
            let at = key.partition_point(|(j, _)| *j < i);
            key.insert(at, (i, set));
        }
        (!key.is_empty()).then_some(key)
    }

    /// The class the step (`old`, `instance`, `next_hops`) led to last time, if it was the last
    /// step taken.
    pub fn memo(
        &self,
        old: Option<ClassId>,
        instance: &str,
        next_hops: &[IpAddr],
    ) -> Option<ClassId> {
        let (o, i, nh, to) = self.memo.as_ref()?;
        (*o == old && nh.as_slice() == next_hops && self.instance(instance) == Some(*i))
            .then_some(*to)
    }

    pub fn remember(
        &mut self,
        old: Option<ClassId>,
        instance: &str,
        next_hops: &[IpAddr],
        to: ClassId,
    ) {
        if let Some(i) = self.instance(instance) {
            self.memo = Some((old, i, next_hops.to_vec(), to));
        }
    }

    pub fn find(&self, key: &Key) -> Option<ClassId> {
        self.index.get(key).copied()
    }

    /// A new class, referred to by nothing yet.
    pub fn insert(
        &mut self,
        key: Key,
        union: Arc<[IpAddr]>,
        resolved: Vec<Arc<Resolved>>,
    ) -> ClassId {
        let class = Class {
            key: key.clone(),
            union,
            resolved,
            refs: 0,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = Some(class);
                id
            }
            None => {
                self.slots.push(Some(class));
                (self.slots.len() - 1) as ClassId
            }
        };
        self.index.insert(key, id);
        id
    }

    pub fn retain(&mut self, id: ClassId) {
        if let Some(c) = self.slots[id as usize].as_mut() {
            c.refs += 1;
        }
    }

    /// One prefix less refers to `id`; the last one frees it.
    pub fn release(&mut self, id: ClassId) {
        let Some(c) = self.slots[id as usize].as_mut() else {
            return;
        };
        c.refs = c.refs.saturating_sub(1);
        if c.refs == 0 {
            if let Some(c) = self.slots[id as usize].take() {
                self.index.remove(&c.key);
            }
            self.free.push(id);
            self.memo = None;
        }
    }

    /// The class `id`; every id in the fabric's map is live.
    pub fn get(&self, id: ClassId) -> &Class {
        self.slots[id as usize]
            .as_ref()
            .unwrap_or_else(|| unreachable!("class {id} referred to after it was freed"))
    }

    pub fn get_mut(&mut self, id: ClassId) -> &mut Class {
        self.slots[id as usize]
            .as_mut()
            .unwrap_or_else(|| unreachable!("class {id} referred to after it was freed"))
    }

    pub fn ids(&self) -> Vec<ClassId> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_some())
            .map(|(i, _)| i as ClassId)
            .collect()
    }

    /// Every class's resolutions as they are now (before a re-resolution).
    pub fn take_resolutions(&self) -> HashMap<ClassId, Vec<Arc<Resolved>>> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (i as ClassId, c.resolved.clone())))
            .collect()
    }
}

impl Class {
    /// Whether instance `name` has next hops in this class.
    pub fn has(&self, classes: &Classes, name: &str) -> bool {
        classes
            .instance(name)
            .is_some_and(|i| self.key.iter().any(|(j, _)| *j == i))
    }
}

//! Semaphore sets the tests make and look for.

use super::*;

pub fn gone(ids: &[i32]) -> bool {
    let now = semids();
    ids.iter().all(|id| !now.contains(id))
}

pub fn sorted(mut ids: Vec<i32>) -> Vec<i32> {
    ids.sort();
    ids
}

/// A cookie with a blocked waiter and one with a live owner: busy, kept.
pub fn busy_cookies() -> (Vec<i32>, Vec<Proc>) {
    let ids = fixture(&["cookie", "--count", "2"]);
    let waiter = Proc::waiter(ids[0]);
    let owner = Proc::fixture(&["hold", &ids[1].to_string()], true);
    (ids, vec![waiter, owner])
}

//! Display names for what the store records by internal key: who did something (`token:zzb-ma`,
//! `link:nanmen`, `daemon`) and what a timer is about (`compile_review@role:…/escalation/2`).
//! A clerk reads names; the key stays beside them in small grey type (`.gid`) at most.

use crate::core::directory::Directory;
use crate::store::{TaskRow, TimerRow};

/// Who an audit or history `actor` is, as a clerk reads it: a token by its name, a branch
/// acting through its signed link by the branch's name, the daemon and the CLI in words.
pub(super) fn actor_zh(actor: &str, directory: &Directory) -> String {
    if let Some(name) = actor.strip_prefix("token:") {
        return format!("{name}（令牌）");
    }
    if let Some(unit) = actor.strip_prefix("link:") {
        let name = directory.unit(unit).map_or(unit, |u| u.name.as_str());
        return format!("{name}（通过链接）");
    }
    match actor {
        "daemon" => "系统自动".into(),
        "cli" => "命令行".into(),
        "simulate" => "模拟运行".into(),
        other => other.into(),
    }
}

/// What a pending timer of a round is about: its task's title and assignee, and for an
/// escalation the rung (`/escalation/2` → 第 2 级); the round itself when it has no task.
pub(super) fn timer_subject(timer: &TimerRow, tasks: &[TaskRow]) -> String {
    let task = timer
        .task_id
        .and_then(|id| tasks.iter().find(|t| t.id == id));
    let Some(task) = task else {
        return "本轮".into();
    };
    let rung = timer
        .key
        .rsplit_once("/escalation/")
        .and_then(|(_, n)| n.parse::<u32>().ok())
        .map(|n| format!("（第 {} 级上报）", n + 1))
        .unwrap_or_default();
    format!("{}（{}）{rung}", task.title, task.assignee_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory() -> Directory {
        let mut d = crate::core::diagnostic::Diagnostics::new("directory.yaml");
        Directory::parse(
            "office: {id: o, name: 某街道党工委}\nroles: []\nunits:\n  - id: nanmen\n    name: 南门社区党委\n    kind: branch\ngroups: []\n",
            &mut d,
        )
        .expect("directory parses")
    }

    #[test]
    fn actors_are_shown_by_name_not_by_key() {
        let d = directory();
        assert_eq!(actor_zh("token:zzb-ma", &d), "zzb-ma（令牌）");
        assert_eq!(actor_zh("link:nanmen", &d), "南门社区党委（通过链接）");
        assert_eq!(actor_zh("link:gone", &d), "gone（通过链接）");
        assert_eq!(actor_zh("daemon", &d), "系统自动");
    }
}

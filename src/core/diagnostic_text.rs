//! The message catalogue: for every diagnostic code, what it means in English (the CLI's
//! and the developer docs' one-line summary) and in Chinese (what the console shows a
//! clerk), with a Chinese hint on how to fix it.
//!
//! The checkers write precise English messages with the names involved (`unknown task
//! \`x\``); the console shows the catalogue's Chinese text for the code, the names quoted in
//! the English message, the Chinese hint, and "did you mean" carried over. The English
//! original stays on the page in small grey type for whoever reports the problem upward.

use super::diagnostic::Diagnostic;

/// The texts of one diagnostic code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeText {
    /// The stable kebab-case code.
    pub code: &'static str,
    /// What the code means, in English.
    pub en: &'static str,
    /// What the code means, in Chinese.
    pub zh: &'static str,
    /// How to fix it, in Chinese.
    pub hint_zh: &'static str,
}

const fn t(
    code: &'static str,
    en: &'static str,
    zh: &'static str,
    hint_zh: &'static str,
) -> CodeText {
    CodeText {
        code,
        en,
        zh,
        hint_zh,
    }
}

/// Every diagnostic code, in the order of docs/workflow-format.md's tables.
pub const CATALOGUE: &[CodeText] = &[
    t(
        "yaml-syntax",
        "the text is not valid YAML",
        "文件不是有效的 YAML 格式",
        "检查这一位置的缩进（只用空格，不用制表符）、引号和括号是否成对；一个文件只写一个文档。",
    ),
    t(
        "too-large",
        "the file is too large or nests too deeply to read",
        "文件过大或嵌套过深，无法读取",
        "工作流文件用不到这么多内容：检查是否误粘贴了大段文字，或拆成几个文件。",
    ),
    t(
        "duplicate-key",
        "the same key twice in one mapping",
        "同一层里写了两次相同的键",
        "删去重复的一行（系统只读了第一处）。",
    ),
    t(
        "unknown-key",
        "a key the format does not have",
        "格式中没有这个键",
        "检查拼写；每一节允许的键见 docs/workflow-format.md。",
    ),
    t(
        "unknown-value",
        "a word that is not one of the allowed values",
        "这个取值不在允许的范围内",
        "改成允许的取值之一。",
    ),
    t(
        "missing-key",
        "a required key is absent",
        "缺少必填的键",
        "补上这个键；各节的必填项见 docs/workflow-format.md。",
    ),
    t(
        "invalid-value",
        "a value of the wrong type or format",
        "取值的类型或格式不对",
        "按要求的格式填写：日期写成 2019-07-01，时间写成 18:00，天数写整数。",
    ),
    t(
        "duplicate-id",
        "two things of one kind with the same id",
        "编号重复",
        "给其中一个改用别的编号；阶段、任务、参数、事件和名录中的编号都不能重复。",
    ),
    t(
        "invalid-id",
        "an id with characters other than a-z, 0-9, _ and -",
        "编号含有不允许的字符",
        "编号只能用小写字母、数字、下划线和连字符。",
    ),
    t(
        "unknown-reference",
        "a name that does not exist",
        "引用了不存在的名称",
        "检查拼写，或先在工作流或名录中定义它。",
    ),
    t(
        "cycle",
        "things that wait for each other",
        "出现循环依赖：几项互相等待，永远无法开始",
        "去掉其中一处 after 或 done 依赖，让先后顺序成为一条链。",
    ),
    t(
        "template-syntax",
        "a template or description that does not compile",
        "模板或说明文字的写法有误",
        "检查 {{ }} 和 {% %} 是否成对、变量名是否正确。",
    ),
    t(
        "bad-schedule",
        "a kickoff schedule that cannot fire",
        "定期启动的时间安排有误",
        "yearly 和 cron 只写一个；月份在 1–12 之间，日期在该月存在。",
    ),
    t(
        "no-contact",
        "a directory role without contacts",
        "名录中的这个角色没有联系人",
        "在名录中为该角色添加至少一位联系人，否则发给它的通知无人接收。",
    ),
    t(
        "invalid-when",
        "an instant that is not defined exactly once",
        "时间点的写法有误",
        "on 和 from 只写一个；days、working_days、hours 最多写一个。",
    ),
    t(
        "invalid-offset",
        "a length or offset that is not allowed",
        "时长或间隔的写法有误",
        "days、working_days、hours 恰好写一个，且取值合理。",
    ),
    t(
        "invalid-stage",
        "a stage with both or neither of closes and duration",
        "阶段的结束时间写法有误",
        "closes 和 duration 只写一个。",
    ),
    t(
        "stage-closes-before-opening",
        "a stage that closes before it opens",
        "阶段的结束早于开始",
        "调整该阶段的 opens 或 closes。",
    ),
    t(
        "deadline-before-stage",
        "a deadline before its stage opens",
        "任务截止早于所在阶段开始",
        "把截止时间放到阶段开始之后。",
    ),
    t(
        "deadline-after-stage",
        "a deadline after its stage closes",
        "任务截止晚于所在阶段结束",
        "如无特殊原因，把截止时间放在阶段结束之前。",
    ),
    t(
        "reminder-after-deadline",
        "a reminder that is not before the deadline",
        "提醒不在截止之前",
        "before 提醒的提前量必须大于零。",
    ),
    t(
        "escalation-order",
        "an escalation rung that fires before the rung above it",
        "逐级上报的顺序颠倒：后一级早于前一级",
        "按时间先后排列各级上报。",
    ),
    t(
        "escalation-to-assignee",
        "an escalation chain that ends at the task's own assignee",
        "上报链最终报给承办者自己，逾期时没有人会被告知",
        "在上报链中加入承办者以外的上级角色。",
    ),
    t(
        "calendar-year-missing",
        "a working-day computation needs a year without a calendar file",
        "计算工作日需要的年份还没有节假日日历",
        "在 config/calendar/ 中添加该年的节假日文件。",
    ),
    t(
        "calendar-provisional",
        "dates counted over the provisional calendar",
        "部分日期按预计日历推算（该年节假日安排尚未发布）",
        "国务院公布该年节假日安排后，添加日历文件并重新加载。",
    ),
    t(
        "calendar-file-missing",
        "next year's holiday calendar file is missing",
        "缺少下一年的节假日日历文件",
        "国务院公布节假日安排后，在 config/calendar/ 中添加该年的文件。",
    ),
    t(
        "invalid-time",
        "a wall-clock time that does not exist in the time zone",
        "这个时刻在所用时区中不存在",
        "换一个时刻。",
    ),
    t(
        "missing-parameter",
        "a parameter without default and no value given",
        "参数没有默认值，也没有给定取值",
        "启动时给出该参数的值，或在工作流中为它写 default。",
    ),
    t(
        "parameter-type",
        "a parameter of the wrong type for its place",
        "参数的类型不适合用在这里",
        "使用类型相符的参数（例如天数处用整数参数）。",
    ),
    t(
        "unknown-parameter",
        "a parameter the workflow does not declare",
        "工作流没有声明这个参数",
        "检查参数名，或在工作流的 parameters 中声明它。",
    ),
    t(
        "outside-simulation",
        "a completion outside the simulated days",
        "完成时间在模拟期间之外，不会生效",
        "把完成时间放在 start 与 until 之间。",
    ),
    t(
        "invalid-config",
        "the configuration file is not valid",
        "配置文件有误",
        "按 docs 中的说明修改 config/yanzhen.toml 的这一项。",
    ),
    t(
        "deprecated",
        "a setting that is no longer used",
        "这一项配置已不再使用",
        "从配置文件中删去这一项。",
    ),
    t(
        "calendar-file",
        "a problem in a holiday calendar file",
        "节假日日历文件有误",
        "按 docs/workflow-format.md 中节假日日历一节的格式修改。",
    ),
    t(
        "io",
        "a file or folder that cannot be read",
        "文件或文件夹无法读取",
        "检查路径是否存在、是否有读取权限、文件是否为 UTF-8 编码。",
    ),
    t(
        "id-mismatch",
        "the file's id is not the workflow being edited",
        "文件中的 id 与正在编辑的工作流不一致",
        "保留原来的 id；要另建工作流，请在工作流页面新建。",
    ),
];

/// The texts of `code`, if it is catalogued.
pub fn lookup(code: &str) -> Option<&'static CodeText> {
    CATALOGUE.iter().find(|c| c.code == code)
}

/// A diagnostic as a clerk reads it: Chinese text, the names it is about, a Chinese hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZhText {
    /// What is wrong, in Chinese, with the names involved.
    pub message: String,
    /// How to fix it, in Chinese.
    pub hint: Option<String>,
}

/// The `quoted` names of an English message, in order, without repeats: those the
/// message is about, and those that say where (`… in \`stages[0]\``).
fn quoted(text: &str) -> (Vec<&str>, Vec<&str>) {
    let (mut about, mut place): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    let parts: Vec<&str> = text.split('`').collect();
    for (i, part) in parts.iter().enumerate() {
        if i % 2 == 0 || part.is_empty() || about.contains(part) || place.contains(part) {
            continue;
        }
        if parts[i - 1].ends_with(" in ") {
            place.push(part);
        } else {
            about.push(part);
        }
    }
    (about, place)
}

/// The Chinese of `d`: the catalogue's text for its code followed by the names quoted in
/// the English message (`引用了不存在的名称：\`x\``), and the catalogue's hint preceded by the
/// English hint's "did you mean" suggestion. An uncatalogued code (a bug the catalogue test
/// catches) falls back to the English.
pub fn zh(d: &Diagnostic) -> ZhText {
    let Some(entry) = lookup(d.code) else {
        return ZhText {
            message: d.message.clone(),
            hint: d.hint.clone(),
        };
    };
    let (names, place) = quoted(&d.message);
    let list = |v: &[&str]| {
        v.iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join("、")
    };
    let mut message = entry.zh.to_string();
    if !names.is_empty() {
        message = format!("{message}：{}", list(&names));
    }
    if !place.is_empty() {
        message = format!("{message}（位于 {}）", list(&place));
    }
    let suggestion = d.hint.as_deref().and_then(|h| {
        let rest = h.split("did you mean `").nth(1)?;
        let name = rest.split('`').next()?;
        Some(format!("是不是想写 `{name}`？"))
    });
    let hint = match suggestion {
        Some(s) => format!("{s}{}", entry.hint_zh),
        None => entry.hint_zh.to_string(),
    };
    ZhText {
        message,
        hint: Some(hint),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::diagnostic::{Diagnostics, Loc};
    use std::collections::BTreeSet;
    use std::path::Path;

    /// Every code a checker can emit: the first string literal of each `.error(` /
    /// `.warning(` call and each `code: "…"` field in `src/`, plus the codes listed in the
    /// documentation's tables (codes chosen through a variable, like the YAML reader's,
    /// are documented there).
    fn emitted_codes() -> BTreeSet<String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut out = BTreeSet::new();
        let is_code = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        };
        let mut stack = vec![root.join("src")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("read src") {
                let p = entry.expect("entry").path();
                if p.is_dir() {
                    stack.push(p);
                    continue;
                }
                if p.extension().is_none_or(|e| e != "rs") || p.ends_with("tests.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&p).expect("read");
                // Test modules build diagnostics with made-up codes.
                let text = text.split("#[cfg(test)]").next().unwrap_or_default();
                for marker in [".error(", ".warning(", "code: "] {
                    for (i, _) in text.match_indices(marker) {
                        let rest = text[i + marker.len()..].trim_start();
                        if let Some(lit) = rest.strip_prefix('"')
                            && let Some(end) = lit.find('"')
                            && is_code(&lit[..end])
                        {
                            out.insert(lit[..end].to_string());
                        }
                    }
                }
            }
        }
        for doc in ["docs/workflow-format.md", "docs/simulate.md"] {
            let text = std::fs::read_to_string(root.join(doc)).expect("read docs");
            let mut in_codes = false;
            for line in text.lines() {
                if line.starts_with("| code |") {
                    in_codes = true;
                } else if !line.starts_with('|') {
                    in_codes = false;
                } else if in_codes
                    && let Some(code) = line.strip_prefix("| `").and_then(|l| l.split('`').next())
                {
                    out.insert(code.to_string());
                }
            }
        }
        out
    }

    #[test]
    fn every_diagnostic_code_has_english_and_chinese_text_and_a_chinese_hint() {
        let codes = emitted_codes();
        assert!(
            codes.len() >= 30 && codes.contains("yaml-syntax") && codes.contains("id-mismatch"),
            "the scan found the codes: {codes:?}"
        );
        for code in &codes {
            let e = lookup(code).unwrap_or_else(|| panic!("`{code}` is not in the catalogue"));
            assert!(e.en.is_ascii() && !e.en.is_empty(), "{code}: English text");
            for zh in [e.zh, e.hint_zh] {
                assert!(
                    zh.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                    "{code}: Chinese text {zh:?}"
                );
            }
        }
        let listed: BTreeSet<String> = CATALOGUE.iter().map(|c| c.code.to_string()).collect();
        assert_eq!(
            listed.len(),
            CATALOGUE.len(),
            "each code is catalogued once"
        );
        let stale: Vec<&String> = listed.difference(&codes).collect();
        assert!(stale.is_empty(), "catalogued but never emitted: {stale:?}");
    }

    #[test]
    fn the_chinese_text_names_what_the_english_quotes_and_carries_did_you_mean_over() {
        let mut d = Diagnostics::new("w.yaml");
        d.error(
            "unknown-reference",
            Loc { line: 3, column: 7 },
            "unknown task `nominte` in `after`",
            Some("did you mean `nominate`? (known: `inspect`, `nominate`)".into()),
        );
        let z = zh(&d.into_sorted()[0]);
        assert_eq!(z.message, "引用了不存在的名称：`nominte`（位于 `after`）");
        assert_eq!(
            z.hint.as_deref(),
            Some("是不是想写 `nominate`？检查拼写，或先在工作流或名录中定义它。")
        );
    }
}

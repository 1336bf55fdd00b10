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
    t(
        "person-unit-unknown",
        "a person of the pool belongs to a unit the directory does not have",
        "后备干部所在的支部不在通讯录中，无法为其生成任务",
        "在 config/directory.yaml 中补上该支部，或在人员库中把此人的所在单位改为已有的支部。",
    ),
    t(
        "ratings-adjust-event",
        "the adjustment rule names an event the workflow does not declare",
        "调整规则引用的事件没有在 events 中声明",
        "在 events: 下声明这个事件，或改成已声明的事件名。",
    ),
    t(
        "ratings-adjust-no-task",
        "no task is due from the adjustment rule's event",
        "没有任务从调整事件起算，不会生成调整任务",
        "增加一项任务（如派给组织办），写 due: {from: {event: 事件名}, working_days: 10}。",
    ),
    t(
        "ratings-adjust-years",
        "the number of consecutive failing years is below one",
        "连续不合格年数必须至少为 1",
        "写 1 或更大的整数，例如 consecutive_failing_years: 2（文件002）。",
    ),
    t(
        "ratings-not-per-branch",
        "a task that collects ratings is assigned to a role, not to branches",
        "收集考核等次的任务派给了角色，而不是各支部",
        "考核等次按支部收集：把 assignee 改为 {group: branches} 这样的分组。",
    ),
    t(
        "ratings-quota-param",
        "the quota's percentage names a parameter that is not an integer parameter",
        "比例上限引用的参数不存在或不是整数参数",
        "在 parameters: 中声明该参数并写 type: integer，或直接写数字。",
    ),
    t(
        "ratings-quota-percent",
        "the quota's percentage is not between 0 and 100",
        "比例上限不是 0 到 100 之间的整数",
        "写 0 到 100 的整数，例如 max_percent: 15。",
    ),
    t(
        "ratings-scale-empty",
        "the rating scale is empty",
        "考核等次列表是空的",
        "按从好到差列出等次，如 [好, 较好, 一般, 差]，或删去 scale 使用默认等次。",
    ),
    t(
        "ratings-scale-item",
        "a rating on the scale is empty or listed twice",
        "等次列表中有空项或重复项",
        "每个等次只写一次，从好到差排列。",
    ),
    t(
        "ratings-twice",
        "more than one task of the workflow collects ratings",
        "同一工作流中有多项任务收集考核等次",
        "考核结果按人按年保存，一个工作流只保留一项收集考核等次的任务。",
    ),
    t(
        "ratings-unknown-rating",
        "a rating named by the rules is not on the scale",
        "规则中写的等次不在等次列表中",
        "改成等次列表中已有的等次，或把它加入 scale。",
    ),
    t(
        "submit-choice-empty",
        "a choice field has no choices",
        "选择题字段没有列出选项",
        "用 choices 列出可选答案，例如 choices: [同意, 不同意]。",
    ),
    t(
        "submit-choices-unused",
        "a field that is not a choice lists choices",
        "不是选择题的字段写了 choices",
        "删去 choices，或把字段类型改为 choice。",
    ),
    t(
        "submit-duplicate-id",
        "two fields or file slots of one task share an id",
        "同一任务的提交项中有重复的编号",
        "给每个字段和附件项各起一个不同的 id。",
    ),
    t(
        "submit-form-missing",
        "a blank form named by a task does not exist",
        "任务列出的空白表格文件不存在",
        "把表格文件放到 templates/forms/ 下，或改正文件名。",
    ),
    t(
        "submit-form-path",
        "a blank form is not a file under templates/forms/",
        "空白表格的路径不在 templates/forms/ 下",
        "写成 templates/forms/附件1-推荐表.docx 这样的路径（docx、xlsx、pdf、jpg 或 png）。",
    ),
    t(
        "submit-kinds-empty",
        "a file slot allows no kind of file",
        "附件项没有允许的文件类型",
        "用 kinds 列出允许的类型，例如 kinds: [docx, pdf]。",
    ),
    t(
        "submit-max-count",
        "the number of files allowed is out of range",
        "允许上传的文件个数超出范围",
        "写一个合理范围内的个数（见提示中的上限）。",
    ),
    t(
        "submit-max-mb",
        "the file size limit is out of range",
        "文件大小上限超出范围",
        "写一个合理范围内的兆字节数（见提示中的上限）。",
    ),
    t(
        "submit-min-above-max",
        "a field's minimum is above its maximum",
        "字段的最小值大于最大值",
        "把 min 改为不大于 max。",
    ),
    t(
        "submit-min-negative",
        "a minimum or maximum number of people is negative",
        "人数下限或上限是负数",
        "写 0 或更大的整数。",
    ),
    t(
        "submit-min-unused",
        "min or max is given on a field that is not a number or a list of people",
        "min 或 max 只适用于数字和人员名单字段",
        "删去 min/max，或把字段类型改为 number 或 people。",
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
        let missing: Vec<&String> = codes.iter().filter(|c| lookup(c).is_none()).collect();
        assert!(missing.is_empty(), "not in the catalogue: {missing:?}");
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

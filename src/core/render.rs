//! Message texts: built-in Chinese templates (in `templates/zh/`, compiled into the binary)
//! that a workflow or a task may override, rendered with minijinja.

use crate::core::definition::{MessageTemplate, Templates};
use minijinja::{Environment, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};

/// One item of a message: a task with its deadline (a digest has several).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Task title.
    pub title: String,
    /// Who must do it (unit or role name).
    pub assignee: String,
    /// Deadline, written in Chinese (`2019年7月12日（星期五）18:00`).
    pub deadline: String,
    /// Whole days left until the deadline (negative when overdue).
    pub days_left: i64,
    /// Link to mark it done, when the console is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// Template kinds a workflow may override, plus the built-in digest, dead-letter and
/// blocked-kickoff, missing-calendar and catch-up notices.
pub const KINDS: &[&str] = &[
    "reminder",
    "due_today",
    "overdue",
    "escalation",
    "kickoff",
    "digest",
    "dead_letter",
    "kickoff_blocked",
    "calendar_missing",
    "catch_up",
    "returned",
];

macro_rules! builtin {
    ($($kind:literal),*) => {
        &[$(
            ($kind,
             include_str!(concat!("../../templates/zh/", $kind, ".subject")),
             include_str!(concat!("../../templates/zh/", $kind, ".txt")),
             include_str!(concat!("../../templates/zh/", $kind, ".html"))),
        )*]
    };
}

/// (kind, subject, text, html) of every built-in template.
const BUILTIN: &[(&str, &str, &str, &str)] = builtin!(
    "reminder",
    "due_today",
    "overdue",
    "escalation",
    "kickoff",
    "digest",
    "dead_letter",
    "kickoff_blocked",
    "calendar_missing",
    "catch_up",
    "returned"
);

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Subject line (one line).
    pub subject: String,
    /// Plain text.
    pub text: String,
    /// HTML.
    pub html: String,
}

/// Rendering failed (a template that validated cannot fail on the documented variables;
/// this guards against data surprises at run time).
#[derive(Debug, thiserror::Error)]
#[error("template `{kind}` ({part}): {source}")]
pub struct RenderError {
    /// Template kind.
    pub kind: String,
    /// subject, text or html.
    pub part: &'static str,
    /// The minijinja error.
    #[source]
    pub source: minijinja::Error,
}

/// Renders built-in and overriding templates.
#[derive(Debug)]
pub struct Renderer {
    env: Environment<'static>,
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new()
    }
}

impl Renderer {
    /// A renderer with the built-in templates loaded.
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        for (kind, subject, text, html) in BUILTIN {
            // Built-ins are compiled into the binary and covered by tests.
            let _ = env.add_template(
                Box::leak(format!("{kind}.subject").into_boxed_str()),
                subject,
            );
            let _ = env.add_template(Box::leak(format!("{kind}.txt").into_boxed_str()), text);
            let _ = env.add_template(Box::leak(format!("{kind}.html").into_boxed_str()), html);
        }
        Renderer { env }
    }

    /// Render one template text (a task description) with the same environment.
    pub fn render_text(&self, source: &str, ctx: &Value) -> Result<String, minijinja::Error> {
        self.env.render_str(source, ctx)
    }

    /// Render `kind` with the first override that sets it (task's, then workflow's), else
    /// the built-in template. An override without `html` gets the text, escaped, in `<pre>`.
    pub fn render(
        &self,
        kind: &str,
        overrides: &[Option<&Templates>],
        ctx: &Value,
    ) -> Result<Rendered, RenderError> {
        let over: Option<&MessageTemplate> = overrides
            .iter()
            .flatten()
            .find_map(|t| t.iter().find(|(k, _)| *k == kind).map(|(_, m)| m));
        let err = |part: &'static str| {
            move |source| RenderError {
                kind: kind.to_string(),
                part,
                source,
            }
        };
        match over {
            Some(m) => {
                let subject = self
                    .env
                    .render_str(&m.subject.value, ctx)
                    .map_err(err("subject"))?;
                let text = self
                    .env
                    .render_str(&m.text.value, ctx)
                    .map_err(err("text"))?;
                let html = match &m.html {
                    Some(h) => {
                        let mut env = self.env.clone();
                        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
                        env.render_str(&h.value, ctx).map_err(err("html"))?
                    }
                    None => format!("<pre>{}</pre>", escape_html(&text)),
                };
                Ok(Rendered {
                    subject: one_line(&subject),
                    text,
                    html,
                })
            }
            None => {
                let get = |part: &'static str, ext: &str| -> Result<String, RenderError> {
                    let name = format!("{kind}.{ext}");
                    let t = self.env.get_template(&name).map_err(err(part))?;
                    t.render(ctx).map_err(err(part))
                };
                Ok(Rendered {
                    subject: one_line(&get("subject", "subject")?),
                    text: get("text", "txt")?,
                    html: get("html", "html")?,
                })
            }
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Minimal HTML escaping for text put inside markup.
pub fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    fn ctx() -> Value {
        context! {
            workflow => context!{ id => "w", title => "街道社区后备干部选拔培养" },
            task => context!{ id => "nomination", title => "组织推荐", description => "确定不少于2名推荐人选" },
            assignee => context!{ id => "dongguan", name => "东关社区党委" },
            recipient => context!{ id => "dongguan", name => "东关社区党委" },
            deadline => "2019年7月12日（星期五）18:00",
            days_left => 2,
            office => context!{ name => "清水街道党工委" },
            items => vec![context!{ title => "组织推荐", assignee => "东关社区党委", deadline => "2019年7月12日（星期五）18:00", days_left => -3 }],
            link => "https://example.gov.cn/t/1?sig=a&b",
        }
    }

    #[test]
    fn builtin_reminder_is_chinese_with_deadline_days_left_and_link() {
        let r = Renderer::new().render("reminder", &[], &ctx()).unwrap();
        assert_eq!(
            r.subject,
            "【提醒】组织推荐（2019年7月12日（星期五）18:00截止）"
        );
        assert!(
            r.text
                .contains("将于2019年7月12日（星期五）18:00截止，还剩2天"),
            "{}",
            r.text
        );
        assert!(r.text.contains("https://example.gov.cn/t/1?sig=a&b"));
        // minijinja escapes `/` too (`&#x2f;`), which browsers read back as `/`.
        assert!(
            r.html.contains("sig=a&amp;b\""),
            "html is escaped: {}",
            r.html
        );
    }

    #[test]
    fn every_builtin_kind_renders_without_error() {
        let r = Renderer::new();
        for kind in KINDS {
            let out = r
                .render(kind, &[], &ctx())
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert!(
                !out.subject.is_empty() && !out.text.is_empty() && !out.html.is_empty(),
                "{kind}"
            );
            assert!(!out.subject.contains('\n'), "{kind}");
        }
    }

    #[test]
    fn escalation_lists_every_overdue_item() {
        let mut c = ctx();
        c = context! { items => vec![
            context!{ title => "组织推荐", assignee => "东关社区党委", deadline => "7月12日", days_left => -3 },
            context!{ title => "组织推荐", assignee => "西关社区党委", deadline => "7月12日", days_left => -3 },
        ], ..c };
        let r = Renderer::new().render("escalation", &[], &c).unwrap();
        assert_eq!(r.subject, "【逾期上报】2项工作逾期未完成");
        assert!(r.text.contains("东关社区党委") && r.text.contains("西关社区党委"));
        assert!(r.text.contains("已逾期3天"));
    }

    #[test]
    fn catch_up_lists_each_overdue_item_with_its_days_late() {
        let c = context! { items => vec![
            context!{ title => "组织推荐", assignee => "东关社区党委", deadline => "7月12日", days_left => -3, link => "https://x/t/1" },
            context!{ title => "材料上报", assignee => "东关社区党委", deadline => "7月15日", days_left => -1 },
        ], round => context!{ start => "2019-07-01" }, ..ctx() };
        let r = Renderer::new().render("catch_up", &[], &c).unwrap();
        assert_eq!(
            r.subject,
            "【补发提醒】街道社区后备干部选拔培养：2项工作已过截止时间"
        );
        assert!(
            r.text.contains("「组织推荐」，7月12日截止，已逾期3天"),
            "{}",
            r.text
        );
        assert!(
            r.text.contains("「材料上报」，7月15日截止，已逾期1天"),
            "{}",
            r.text
        );
        assert!(r.text.contains("标记完成：https://x/t/1"), "{}", r.text);
    }

    #[test]
    fn a_task_override_wins_over_the_workflow_and_the_builtin() {
        let mut d = crate::core::diagnostic::Diagnostics::new("t");
        let wf: Templates = crate::core::yaml::parse(
            "reminder:\n  subject: \"工作流：{{ task.title }}\"\n  text: x\n",
            &mut d,
        )
        .unwrap();
        let task: Templates = crate::core::yaml::parse("reminder:\n  subject: \"任务：{{ task.title }}\"\n  text: \"<b>{{ task.title }}</b>\"\n", &mut d).unwrap();
        let r = Renderer::new();
        assert_eq!(
            r.render("reminder", &[Some(&task), Some(&wf)], &ctx())
                .unwrap()
                .subject,
            "任务：组织推荐"
        );
        let only_wf = r.render("reminder", &[None, Some(&wf)], &ctx()).unwrap();
        assert_eq!(only_wf.subject, "工作流：组织推荐");
        let t = r.render("reminder", &[Some(&task)], &ctx()).unwrap();
        assert_eq!(t.html, "<pre>&lt;b&gt;组织推荐&lt;/b&gt;</pre>");
    }
}

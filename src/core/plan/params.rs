//! Parameters: the values given for a round (or the defaults) resolved once, and the
//! `${name}` references and offsets of a workflow resolved against them.

use super::{Len, Planner};
use crate::core::definition::{Literal, Offset, ParamType, TimeOfDay, Val};
use crate::core::diagnostic::{Loc, Sp, suggest};
use chrono::NaiveDate;

/// A resolved parameter value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ParamValue {
    Integer(i64),
    Date(NaiveDate),
    Time(TimeOfDay),
    Text(String),
}

impl ParamValue {
    pub(super) fn json(&self) -> serde_json::Value {
        match self {
            ParamValue::Integer(i) => (*i).into(),
            ParamValue::Date(d) => d.to_string().into(),
            ParamValue::Time(t) => t.to_string().into(),
            ParamValue::Text(s) => s.clone().into(),
        }
    }

    fn parse(kind: ParamType, v: &serde_json::Value) -> Result<ParamValue, String> {
        let text = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match kind {
            ParamType::Integer => match v.as_i64() {
                Some(i) => Ok(ParamValue::Integer(i)),
                None => i64::from_text(&text).map(ParamValue::Integer),
            },
            ParamType::Date => NaiveDate::from_text(&text).map(ParamValue::Date),
            ParamType::Time => TimeOfDay::from_text(&text).map(ParamValue::Time),
            ParamType::Text => Ok(ParamValue::Text(text)),
        }
    }
}

/// Values that can be taken out of a parameter.
pub(super) trait FromParam: Sized + Literal {
    fn from_param(v: &ParamValue) -> Option<Self>;
}
impl FromParam for i64 {
    fn from_param(v: &ParamValue) -> Option<Self> {
        match v {
            ParamValue::Integer(i) => Some(*i),
            _ => None,
        }
    }
}
impl FromParam for NaiveDate {
    fn from_param(v: &ParamValue) -> Option<Self> {
        match v {
            ParamValue::Date(d) => Some(*d),
            _ => None,
        }
    }
}
impl FromParam for TimeOfDay {
    fn from_param(v: &ParamValue) -> Option<Self> {
        match v {
            ParamValue::Time(t) => Some(*t),
            _ => None,
        }
    }
}

impl<'a> Planner<'a> {
    pub(super) fn resolve_params(&mut self) {
        let wf = self.input.workflow;
        for (name, _) in self.input.params.iter() {
            if wf.parameter(name).is_none() {
                let known: Vec<&str> = wf.parameters.iter().map(|p| p.id.value.as_str()).collect();
                self.error(
                    "unknown-parameter",
                    Loc::default(),
                    format!("workflow `{}` has no parameter `{name}`", wf.id.value),
                    Some(suggest(name, known.iter().copied())),
                );
            }
        }
        for param in &wf.parameters {
            let given = self.input.params.get(&param.id.value);
            let (value, loc, source) = match (given, &param.default) {
                (Some(text), _) => (
                    serde_json::Value::String(text.clone()),
                    param.id.loc,
                    "--param",
                ),
                (None, Some(d)) => (d.value.clone(), d.loc, "default"),
                (None, None) => {
                    self.error(
                        "missing-parameter",
                        param.id.loc,
                        format!(
                            "parameter `{}` has no default and no value was given",
                            param.id.value
                        ),
                        Some(format!(
                            "add `default:` to the parameter or pass --param {}=VALUE",
                            param.id.value
                        )),
                    );
                    continue;
                }
            };
            match ParamValue::parse(param.kind, &value) {
                Ok(v) => {
                    self.params.insert(param.id.value.clone(), v);
                }
                Err(e) => self.error(
                    "invalid-value",
                    loc,
                    format!(
                        "{source} value of parameter `{}` is not a {}: {e}",
                        param.id.value,
                        param.kind.name()
                    ),
                    None,
                ),
            }
        }
    }

    pub(super) fn val<T: FromParam + Clone>(&mut self, v: &Sp<Val<T>>) -> Option<T> {
        match &v.value {
            Val::Lit(x) => Some(x.clone()),
            Val::Param(name) => match self.params.get(name) {
                Some(pv) => match T::from_param(pv) {
                    Some(x) => Some(x),
                    None => {
                        let actual = self
                            .input
                            .workflow
                            .parameter(name)
                            .map(|p| p.kind.name())
                            .unwrap_or("?");
                        self.error(
                            "parameter-type",
                            v.loc,
                            format!("parameter `{name}` is of type {actual}, but this value must be of type {}", T::TYPE.name()),
                            Some(format!("use a parameter declared with `type: {}`", T::TYPE.name())),
                        );
                        None
                    }
                },
                None => {
                    if self.input.workflow.parameter(name).is_none() {
                        let known: Vec<&str> = self
                            .input
                            .workflow
                            .parameters
                            .iter()
                            .map(|p| p.id.value.as_str())
                            .collect();
                        self.error(
                            "unknown-reference",
                            v.loc,
                            format!("unknown parameter `{name}`"),
                            Some(suggest(name, known.iter().copied())),
                        );
                    }
                    None
                }
            },
        }
    }

    pub(super) fn offset(&mut self, o: &Sp<Offset>) -> Option<Len> {
        let given = [
            o.days.is_some(),
            o.working_days.is_some(),
            o.hours.is_some(),
        ];
        if given.iter().filter(|x| **x).count() != 1 {
            self.error(
                "invalid-offset",
                o.loc,
                "an offset needs exactly one of `days`, `working_days`, `hours`".into(),
                Some("e.g. `{days: 3}` or `{working_days: 2}`".into()),
            );
            return None;
        }
        if let Some(v) = &o.days {
            return self.val(v).map(Len::Days);
        }
        if let Some(v) = &o.working_days {
            return self.val(v).map(Len::WorkingDays);
        }
        o.hours.as_ref().and_then(|v| self.val(v)).map(Len::Hours)
    }
}

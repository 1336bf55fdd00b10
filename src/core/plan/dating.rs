//! Dating: every stage opening and closing and every deadline turned into an instant,
//! memoised, with cycle detection, working days counted on the calendar.

use super::{Len, MAX_DATE_CHAIN, Moment, Planner, Point, State, len_value};
use crate::core::calendar::{CalendarError, Roll};
use crate::core::definition::{Anchor, TimeOfDay, When};
use crate::core::diagnostic::{Loc, Sp, suggest};
use chrono::{DateTime, Duration, NaiveDate, TimeZone};
use chrono_tz::Tz;

impl<'a> Planner<'a> {
    fn cal_error(&mut self, loc: Loc, e: CalendarError) {
        let hint = match &e {
            CalendarError::YearNotCovered { .. } => {
                "working days need the holiday notice of that year (the year after the last file is planned provisionally, later years are not); add the file, or count in calendar `days`".to_string()
            }
            _ => "check the month and year".to_string(),
        };
        self.error("calendar-year-missing", loc, e.to_string(), Some(hint));
    }

    fn local(&mut self, loc: Loc, date: NaiveDate, t: TimeOfDay) -> Option<DateTime<Tz>> {
        let naive = date.and_time(t.0);
        // A wall time skipped by a DST change resolves to the first valid instant after it.
        match self.input.tz.from_local_datetime(&naive).earliest() {
            Some(x) => Some(x),
            None => match naive
                .checked_add_signed(Duration::hours(1))
                .and_then(|n| self.input.tz.from_local_datetime(&n).earliest())
            {
                Some(x) => Some(x),
                None => {
                    self.error(
                        "invalid-time",
                        loc,
                        format!("{naive} does not exist in {}", self.input.tz),
                        None,
                    );
                    None
                }
            },
        }
    }

    /// Note that the instant defined at `loc` was counted over the provisional year.
    fn provisional(&mut self, loc: Loc, provisional: bool) -> bool {
        if provisional && self.provisional_at.is_none() {
            self.provisional_at = Some(loc);
        }
        provisional
    }

    /// `at` moved by `len` (times `sign`), and whether the move counted over the
    /// provisional year.
    pub(super) fn shift(
        &mut self,
        loc: Loc,
        at: DateTime<Tz>,
        len: Len,
        sign: i64,
        time: Option<TimeOfDay>,
    ) -> Option<(DateTime<Tz>, bool)> {
        let t = time.unwrap_or(TimeOfDay(at.time()));
        // Checked: an offset from a file can be any i64, and chrono panics past its range.
        let Some(n) = sign.checked_mul(len_value(len)) else {
            return self.out_of_range(loc, len);
        };
        match len {
            Len::Hours(_) => match Duration::try_hours(n).and_then(|d| at.checked_add_signed(d)) {
                Some(x) => Some((x, false)),
                None => self.out_of_range(loc, len),
            },
            Len::Days(_) => {
                match Duration::try_days(n).and_then(|d| at.date_naive().checked_add_signed(d)) {
                    Some(date) => self.local(loc, date, t).map(|x| (x, false)),
                    None => self.out_of_range(loc, len),
                }
            }
            Len::WorkingDays(_) => {
                match self
                    .input
                    .calendar
                    .add_working_days_dated(at.date_naive(), n)
                {
                    Ok(d) => {
                        let p = self.provisional(loc, d.provisional);
                        self.local(loc, d.date, t).map(|x| (x, p))
                    }
                    Err(e) => {
                        self.cal_error(loc, e);
                        None
                    }
                }
            }
        }
    }

    fn out_of_range<T>(&mut self, loc: Loc, len: Len) -> Option<T> {
        self.error(
            "invalid-offset",
            loc,
            format!(
                "the offset `{}: {}` is out of range: the date would not exist",
                match len {
                    Len::Days(_) => "days",
                    Len::WorkingDays(_) => "working_days",
                    Len::Hours(_) => "hours",
                },
                len_value(len)
            ),
            Some("check the number for a typo".into()),
        );
        None
    }

    pub(super) fn round_start(&mut self) -> Option<DateTime<Tz>> {
        let (start, opens) = (self.input.start, self.opens_at);
        self.local(Loc::default(), start, opens)
    }

    /// Resolve a point, detecting cycles.
    pub(super) fn point(&mut self, pt: Point, from_loc: Loc) -> Option<Moment> {
        match self.memo.get(&pt) {
            Some(State::Done(m)) => return m.clone(),
            Some(State::Visiting) => {
                let pos = self.stack.iter().position(|x| *x == pt).unwrap_or(0);
                let mut names: Vec<String> = self.stack[pos..]
                    .iter()
                    .map(|x| self.point_name(*x))
                    .collect();
                names.push(self.point_name(pt));
                self.error(
                    "cycle",
                    from_loc,
                    format!("dates depend on each other in a cycle: {}", names.join(" → ")),
                    Some("make one of them count from `round_start`, an earlier stage or a fixed date".into()),
                );
                return None;
            }
            None => {}
        }
        // Resolution recurses once per link: a long forward chain would overflow the stack.
        if self.stack.len() >= MAX_DATE_CHAIN {
            self.error(
                "invalid-when",
                from_loc,
                format!(
                    "the {} depends on a chain of more than {MAX_DATE_CHAIN} other dates",
                    self.point_name(pt)
                ),
                Some("count from `round_start`, an earlier stage or a fixed date".into()),
            );
            return None;
        }
        self.memo.insert(pt, State::Visiting);
        self.stack.push(pt);
        let m = self.compute(pt);
        self.stack.pop();
        self.memo.insert(pt, State::Done(m.clone()));
        m
    }

    fn point_name(&self, pt: Point) -> String {
        let wf = self.input.workflow;
        match pt {
            Point::Open(i) => format!("opening of stage `{}`", wf.stages[i].id.value),
            Point::Close(i) => format!("closing of stage `{}`", wf.stages[i].id.value),
            Point::Due(i) => format!("deadline of task `{}`", self.tasks[i].1.id.value),
        }
    }

    fn compute(&mut self, pt: Point) -> Option<Moment> {
        let wf = self.input.workflow;
        match pt {
            Point::Open(i) => {
                let stage = &wf.stages[i];
                match &stage.opens {
                    Some(w) => self.when(w, i, self.opens_at),
                    None if i == 0 => self.round_start().map(fixed),
                    None => self.point(Point::Close(i - 1), stage.id.loc),
                }
            }
            Point::Close(i) => {
                let stage = &wf.stages[i];
                match (&stage.closes, &stage.duration) {
                    (Some(w), None) => self.when(w, i, self.due_at),
                    (None, Some(d)) => {
                        let open = self.point(Point::Open(i), d.loc)?;
                        let len = self.offset(d)?;
                        match open.at {
                            Some(at) => {
                                let (at, p) = self.shift(d.loc, at, len, 1, None)?;
                                Some(Moment {
                                    at: Some(at),
                                    provisional: open.provisional || p,
                                    ..open
                                })
                            }
                            None => Some(open),
                        }
                    }
                    (Some(w), Some(_)) => {
                        self.error(
                            "invalid-stage",
                            w.loc,
                            format!(
                                "stage `{}` has both `closes` and `duration`",
                                stage.id.value
                            ),
                            Some("keep one of them".into()),
                        );
                        None
                    }
                    (None, None) => {
                        self.error(
                            "invalid-stage",
                            stage.id.loc,
                            format!("stage `{}` has no end", stage.id.value),
                            Some(
                                "add `closes:` (an instant) or `duration:` (e.g. `{days: 5}`)"
                                    .into(),
                            ),
                        );
                        None
                    }
                }
            }
            Point::Due(i) => {
                let (stage, task) = self.tasks[i];
                self.when(&task.due, stage, self.due_at)
            }
        }
    }

    fn anchor(&mut self, a: &Sp<Anchor>, stage: usize) -> Option<Moment> {
        let wf = self.input.workflow;
        let stage_ids = || wf.stages.iter().map(|s| s.id.value.as_str());
        match &a.value {
            Anchor::RoundStart => self.round_start().map(fixed),
            Anchor::StageOpen => self.point(Point::Open(stage), a.loc),
            Anchor::StageClose => self.point(Point::Close(stage), a.loc),
            Anchor::OpenOf(id) | Anchor::CloseOf(id) => match wf.stage_index(id) {
                Some(j) => {
                    let pt = if matches!(a.value, Anchor::OpenOf(_)) {
                        Point::Open(j)
                    } else {
                        Point::Close(j)
                    };
                    self.point(pt, a.loc)
                }
                None => {
                    self.error(
                        "unknown-reference",
                        a.loc,
                        format!("unknown stage `{id}`"),
                        Some(suggest(id, stage_ids())),
                    );
                    None
                }
            },
            Anchor::Done(id) => match self.tasks.iter().position(|(_, t)| t.id.value == *id) {
                Some(_) if self.input.done.is_some_and(|d| d.contains_key(id)) => {
                    let at = self.input.done.and_then(|d| d.get(id)).copied()?;
                    Some(fixed(at.with_timezone(&self.input.tz)))
                }
                Some(j) => self.point(Point::Due(j), a.loc).map(|m| Moment {
                    projected: m.at.is_some(),
                    ..m
                }),
                None => {
                    let ids: Vec<&str> = self
                        .tasks
                        .iter()
                        .map(|(_, t)| t.id.value.as_str())
                        .collect();
                    self.error(
                        "unknown-reference",
                        a.loc,
                        format!("unknown task `{id}`"),
                        Some(suggest(id, ids.iter().copied())),
                    );
                    None
                }
            },
            Anchor::Event(id) => {
                let happened = self.input.events.and_then(|e| e.get(id)).copied();
                if let Some(at) = happened
                    && wf.events.iter().any(|e| e.id.value == *id)
                {
                    Some(fixed(at.with_timezone(&self.input.tz)))
                } else if wf.events.iter().any(|e| e.id.value == *id) {
                    Some(Moment {
                        at: None,
                        projected: false,
                        provisional: false,
                        event: Some(id.clone()),
                        wait: None,
                    })
                } else {
                    let ids: Vec<&str> = wf.events.iter().map(|e| e.id.value.as_str()).collect();
                    self.error(
                        "unknown-reference",
                        a.loc,
                        format!("unknown event `{id}`"),
                        Some(format!(
                            "declare it under `events:`; {}",
                            suggest(id, ids.iter().copied())
                        )),
                    );
                    None
                }
            }
        }
    }

    fn when(&mut self, w: &Sp<When>, stage: usize, default_time: TimeOfDay) -> Option<Moment> {
        let offsets = [
            w.days.is_some(),
            w.working_days.is_some(),
            w.hours.is_some(),
        ];
        if offsets.iter().filter(|x| **x).count() > 1 {
            self.error(
                "invalid-when",
                w.loc,
                "give at most one of `days`, `working_days`, `hours`".into(),
                None,
            );
            return None;
        }
        if w.hours.is_some() && w.at.is_some() {
            self.error(
                "invalid-when",
                w.loc,
                "`at` cannot be combined with `hours`".into(),
                Some("use `days`/`working_days` with `at`, or `hours` alone".into()),
            );
            return None;
        }
        let at = match &w.at {
            Some(v) => Some(self.val(v)?),
            None => None,
        };
        let base: Moment = match (&w.on, &w.from) {
            (Some(on), None) => {
                let date = self.val(on)?;
                fixed(self.local(on.loc, date, at.unwrap_or(default_time))?)
            }
            (None, Some(a)) => self.anchor(a, stage)?,
            (Some(_), Some(_)) => {
                self.error(
                    "invalid-when",
                    w.loc,
                    "give either `on` (a date) or `from` (an anchor), not both".into(),
                    None,
                );
                return None;
            }
            (None, None) => {
                self.error(
                    "invalid-when",
                    w.loc,
                    "an instant needs `on: YYYY-MM-DD` or `from: ...`".into(),
                    Some("e.g. `{from: round_start, days: 11}` or `{on: 2019-07-12}`".into()),
                );
                return None;
            }
        };
        let len = if let Some(v) = &w.days {
            Some(Len::Days(self.val(v)?))
        } else if let Some(v) = &w.working_days {
            Some(Len::WorkingDays(self.val(v)?))
        } else if let Some(v) = &w.hours {
            Some(Len::Hours(self.val(v)?))
        } else {
            None
        };
        let Some(base_at) = base.at else {
            // Waits for an event: the instant is known only once it happens.
            return Some(Moment {
                wait: len.map(len_zh),
                ..base
            });
        };
        let (mut result, mut provisional) = match len {
            Some(l @ (Len::Days(_) | Len::WorkingDays(_))) => {
                self.shift(w.loc, base_at, l, 1, Some(at.unwrap_or(default_time)))?
            }
            Some(l @ Len::Hours(_)) => self.shift(w.loc, base_at, l, 1, None)?,
            None => match at {
                Some(t) if w.on.is_none() => (self.local(w.loc, base_at.date_naive(), t)?, false),
                _ => (base_at, false),
            },
        };
        if !matches!(len, Some(Len::WorkingDays(_))) {
            let roll = w.if_non_working.unwrap_or(self.roll);
            if roll != Roll::Keep {
                match self.input.calendar.roll_dated(result.date_naive(), roll) {
                    Ok(d) => {
                        provisional |= self.provisional(w.loc, d.provisional);
                        if d.date != result.date_naive() {
                            result = self.local(w.loc, d.date, TimeOfDay(result.time()))?;
                        }
                    }
                    Err(e) => {
                        self.cal_error(w.loc, e);
                        return None;
                    }
                }
            }
        }
        Some(Moment {
            at: Some(result),
            provisional: base.provisional || provisional,
            ..base
        })
    }
}

fn len_zh(l: Len) -> String {
    match l {
        Len::Days(n) => format!("{n}天"),
        Len::WorkingDays(n) => format!("{n}个工作日"),
        Len::Hours(n) => format!("{n}小时"),
    }
}

fn fixed(at: DateTime<Tz>) -> Moment {
    Moment {
        at: Some(at),
        projected: false,
        provisional: false,
        event: None,
        wait: None,
    }
}

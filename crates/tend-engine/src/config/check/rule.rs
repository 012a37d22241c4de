//! Checking a pool's `[[pool.rule]]` tables: condition, hysteresis, timing, scope and channels.

use super::super::*;
use super::{Checker, locate};

impl Checker<'_> {
    /// Deserializes and checks every `[[pool.rule]]` of one pool; returns the rules with their name spans.
    pub(super) fn rules(
        &mut self,
        value: Spanned<DeValue<'_>>,
        pool_ctx: &str,
    ) -> Vec<(RuleConfig, Range<usize>)> {
        let span = value.span();
        let DeValue::Array(items) = value.into_inner() else {
            self.at(span, pool_ctx, "`rule` must be an array of tables: write each rule as [[pool.rule]]");
            return Vec::new();
        };
        let mut rules: Vec<(RuleConfig, Range<usize>)> = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            let header = item.span();
            let ctx = match item.get_ref().get("name").and_then(|v| v.get_ref().as_str()) {
                Some(name) => format!("{pool_ctx}rule \"{name}\": "),
                None => format!("{pool_ctx}rule #{}: ", index + 1),
            };
            let Some(raw) = self.de::<RawRule>(item, &ctx) else { continue };
            let name_span = raw.name.as_ref().map_or(header.clone(), |n| n.span());
            let rule = self.rule(raw, header, &ctx);
            if let Some((_, first)) = rules.iter().find(|(r, _)| r.name == rule.name && !rule.name.is_empty())
            {
                let line = locate(self.text, first.start).line;
                self.at(
                    name_span.clone(),
                    &ctx,
                    format!("duplicate rule name (first defined on line {line})"),
                );
            }
            rules.push((rule, name_span));
        }
        rules
    }

    pub(super) fn rule(&mut self, r: RawRule, header: Range<usize>, ctx: &str) -> RuleConfig {
        let name = match &r.name {
            Some(name) => {
                self.check_name(name, "rule", ctx);
                name.get_ref().clone()
            }
            None => {
                self.at(header.clone(), ctx, "missing key \"name\"");
                String::new()
            }
        };

        let kinds: Vec<(&str, Range<usize>)> = [
            ("above", r.above.as_ref().map(|v| v.span())),
            ("below", r.below.as_ref().map(|v| v.span())),
            ("stale", r.stale.as_ref().map(|v| v.span())),
            ("restarts", r.restarts.as_ref().map(|v| v.span())),
        ]
        .into_iter()
        .filter_map(|(k, s)| s.map(|s| (k, s)))
        .collect();
        let placeholder = RuleCondition::Stale { after: Duration::from_secs(1) };
        let condition = match kinds.as_slice() {
            [] => {
                self.at(header.clone(), ctx, "a rule needs one condition: above, below, stale or restarts");
                placeholder
            }
            [_, (_, second), ..] => {
                let names = kinds.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ");
                self.at(
                    second.clone(),
                    ctx,
                    format!(
                        "a rule has exactly one condition, this one has {names}: \
                         use one of above, below, stale, restarts"
                    ),
                );
                placeholder
            }
            [(kind, _)] => self.condition(kind, &r, &header, ctx).unwrap_or(placeholder),
        };

        // Keys that only go with some conditions.
        let is = |k: &str| kinds.len() == 1 && kinds[0].0 == k;
        let misplaced: [(&str, Option<Range<usize>>, bool, &str); 4] = [
            ("metric", r.metric.as_ref().map(|v| v.span()), is("above") || is("below"), "above or below"),
            ("clear_below", r.clear_below.as_ref().map(|v| v.span()), is("above"), "above"),
            ("clear_above", r.clear_above.as_ref().map(|v| v.span()), is("below"), "below"),
            ("within", r.within.as_ref().map(|v| v.span()), is("restarts"), "restarts"),
        ];
        for (key, span, fits, with) in misplaced {
            if let Some(span) = span
                && !fits
                && kinds.len() == 1
            {
                self.at(span, ctx, format!("key \"{key}\" goes only with {with}, not {}", kinds[0].0));
            }
        }

        let severity = match &r.severity {
            Some(s) => self
                .choice(
                    s,
                    "severity",
                    ctx,
                    &[
                        ("info", Severity::Info),
                        ("warning", Severity::Warning),
                        ("critical", Severity::Critical),
                    ],
                )
                .unwrap_or(Severity::Warning),
            None => Severity::Warning,
        };
        let scope = match &r.scope {
            Some(s) => self
                .choice(s, "scope", ctx, &[("worker", Scope::Worker), ("pool", Scope::Pool)])
                .unwrap_or(Scope::Worker),
            None => Scope::Worker,
        };
        let recycle = r.recycle.unwrap_or(false);
        if recycle && scope == Scope::Pool {
            let span = r.scope.as_ref().map_or(header.clone(), |s| s.span());
            self.at(span, ctx, "`recycle = true` applies only to scope = \"worker\"");
        }
        let flap_window_given = r.flap_window.is_some();
        let flap_window =
            self.duration(r.flap_window, "flap_window", ctx, LONG).unwrap_or(Duration::from_secs(600));
        let flap_max = self.int(r.flap_max, "flap_max", ctx, 1, u32::MAX);
        if flap_max.is_none() && flap_window_given {
            self.at(header.clone(), ctx, "`flap_window` needs `flap_max`");
        }
        let mut channels = Vec::new();
        for c in r.channels.map(Spanned::into_inner).unwrap_or_default() {
            if c.get_ref().trim().is_empty() {
                self.at(c.span(), ctx, "a channel name must not be empty");
            }
            self.channel_refs.push((c.get_ref().clone(), c.span(), ctx.to_owned()));
            channels.push(c.into_inner());
        }

        RuleConfig {
            name,
            scope,
            condition,
            for_: self.duration(r.for_, "for", ctx, LONG_OR_ZERO).unwrap_or(Duration::ZERO),
            for_samples: self.int(r.for_samples, "for_samples", ctx, 0, u32::MAX).unwrap_or(0),
            keep_firing_for: self
                .duration(r.keep_firing_for, "keep_firing_for", ctx, LONG_OR_ZERO)
                .unwrap_or(Duration::ZERO),
            severity,
            flap_max,
            flap_window,
            recycle,
            channels,
        }
    }

    pub(super) fn condition(
        &mut self,
        kind: &str,
        r: &RawRule,
        header: &Range<usize>,
        ctx: &str,
    ) -> Option<RuleCondition> {
        match kind {
            "above" | "below" => {
                let (cmp, fire, clear, clear_key) = if kind == "above" {
                    (Comparison::Above, r.above.as_ref()?, r.clear_below.as_ref(), "clear_below")
                } else {
                    (Comparison::Below, r.below.as_ref()?, r.clear_above.as_ref(), "clear_above")
                };
                let metric = match &r.metric {
                    None => {
                        self.at(
                            header.clone(),
                            ctx,
                            format!("missing key \"metric\": `{kind}` compares a metric"),
                        );
                        return None;
                    }
                    Some(m) => {
                        let name = m.get_ref();
                        if name.is_empty() || name.chars().any(char::is_whitespace) {
                            self.at(m.span(), ctx, format!("invalid metric name \"{name}\""));
                        }
                        name.clone()
                    }
                };
                let fire_v = *fire.get_ref();
                if !fire_v.is_finite() {
                    self.at(fire.span(), ctx, format!("`{kind}` must be a finite number"));
                }
                if let Some(c) = clear {
                    let c_v = *c.get_ref();
                    let wrong_side = match cmp {
                        Comparison::Above => c_v > fire_v,
                        Comparison::Below => c_v < fire_v,
                    };
                    if wrong_side || !c_v.is_finite() {
                        let rel = if cmp == Comparison::Above { "<=" } else { ">=" };
                        self.at(
                            c.span(),
                            ctx,
                            format!("`{clear_key}` ({c_v}) must be {rel} `{kind}` ({fire_v})"),
                        );
                    }
                }
                Some(RuleCondition::Threshold {
                    metric,
                    cmp,
                    fire: fire_v,
                    clear: clear.map(|c| *c.get_ref()),
                })
            }
            "stale" => {
                let after = self.duration_ref(r.stale.as_ref()?, "stale", ctx, STALE)?;
                Some(RuleCondition::Stale { after })
            }
            _ => {
                let max = self.int(r.restarts.clone(), "restarts", ctx, 0, u32::MAX)?;
                let Some(within) = &r.within else {
                    self.at(
                        header.clone(),
                        ctx,
                        "missing key \"within\": `restarts` counts restarts within a window, \
                         like within = \"10m\"",
                    );
                    return None;
                };
                let within = self.duration_ref(within, "within", ctx, LONG)?;
                Some(RuleCondition::RestartChurn { max, within })
            }
        }
    }

    /// Rules checked against their pool.
    pub(super) fn check_rules_against_pool(
        &mut self,
        pool: &PoolConfig,
        rules: &[(RuleConfig, Range<usize>)],
        ctx: &str,
    ) {
        for (rule, span) in rules {
            if pool.profile == Profile::Disabled
                && !matches!(rule.condition, RuleCondition::RestartChurn { .. })
            {
                self.at(
                    span.clone(),
                    ctx,
                    format!(
                        "rule \"{}\": the pool is not sampled (profile = \"disabled\"), so it can never fire",
                        rule.name
                    ),
                );
            }
        }
    }
}

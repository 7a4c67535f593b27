//! Properties of a document's tax (`domain::tax_lines`) over random documents: the lines add
//! up, each rate's tax is within a minor unit of the exact rational value, the rounding modes
//! are ordered, and amounts past `Money::MAX_AMOUNT` are refused, never wrapped.

use orderhub_actors::domain::{
    tax_lines, BasisPoints, DomainError, Money, TaxRounding, TaxRules, TaxSettings, TaxSummary,
};
use proptest::prelude::*;

fn settings(prices_include_tax: bool, rounding: TaxRounding) -> TaxSettings {
    TaxSettings {
        prices_include_tax,
        rules: TaxRules::japan(),
        rounding,
    }
}

fn rounding() -> impl Strategy<Value = TaxRounding> {
    prop::sample::select(TaxRounding::ALL.to_vec())
}

/// A few rates, common ones more often, so that lines share rates.
fn rate() -> impl Strategy<Value = BasisPoints> {
    prop_oneof![
        prop::sample::select(vec![0_i64, 500, 800, 1000, 2000, 10_000]),
        0_i64..=10_000,
    ]
    .prop_map(|r| BasisPoints::new(r).expect("0 to 10000"))
}

/// Up to 100 lines (an order's limit) whose total stays within `Money::MAX_AMOUNT`.
fn document() -> impl Strategy<Value = Vec<(BasisPoints, i64)>> {
    prop::collection::vec((rate(), 0_i64..=Money::MAX_AMOUNT / 100), 0..=100)
}

fn summarize(document: &[(BasisPoints, i64)], settings: &TaxSettings) -> TaxSummary {
    tax_lines(document.iter().copied(), settings).expect("the total is within the limit")
}

proptest! {
    /// The document's tax and total are the sums of its lines' taxes and bases, and the lines
    /// are one per distinct rate, ascending.
    #[test]
    fn the_lines_add_up(doc in document(), included in any::<bool>(), mode in rounding()) {
        let s = summarize(&doc, &settings(included, mode));
        prop_assert_eq!(s.tax, s.lines.iter().map(|l| l.tax).sum::<i64>());
        prop_assert_eq!(s.total, s.lines.iter().map(|l| l.base).sum::<i64>());
        prop_assert_eq!(s.total, doc.iter().map(|(_, a)| a).sum::<i64>());
        prop_assert!(s.lines.windows(2).all(|w| w[0].basis_points < w[1].basis_points));
        let mut rates: Vec<BasisPoints> = doc.iter().map(|(r, _)| *r).collect();
        rates.sort();
        rates.dedup();
        prop_assert_eq!(rates, s.lines.iter().map(|l| l.basis_points).collect::<Vec<_>>());
        let expected = if included { s.total } else { s.total + s.tax };
        prop_assert_eq!(s.grand_total, expected);
    }

    /// Each rate's tax is less than one minor unit away from the exact value
    /// base × r / (10000 + r) or base × r / 10000, compared as fractions in i128; DOWN never
    /// exceeds it and UP never falls short of it.
    #[test]
    fn each_rate_is_within_a_unit_of_the_exact_tax(
        doc in document(), included in any::<bool>(), mode in rounding(),
    ) {
        let s = summarize(&doc, &settings(included, mode));
        for line in &s.lines {
            let r = i128::from(line.basis_points.get());
            let numerator = i128::from(line.base) * r;
            let denominator = if included { 10_000 + r } else { 10_000 };
            // |tax − n/d| < 1  ⇔  |tax·d − n| < d.
            let error = i128::from(line.tax) * denominator - numerator;
            prop_assert!(error.abs() < denominator, "{line:?}");
            match mode {
                TaxRounding::Down => prop_assert!(error <= 0, "{line:?}"),
                TaxRounding::Up => prop_assert!(error >= 0, "{line:?}"),
                // Within half a unit: |error| ≤ d/2, ties going up.
                TaxRounding::HalfUp => {
                    prop_assert!(-denominator < 2 * error && 2 * error <= denominator, "{line:?}")
                }
            }
        }
    }

    /// When prices include tax, the customer pays the sum of the amounts, whatever the rates.
    #[test]
    fn included_prices_are_what_the_customer_pays(doc in document(), mode in rounding()) {
        let s = summarize(&doc, &settings(true, mode));
        prop_assert_eq!(s.grand_total, doc.iter().map(|(_, a)| a).sum::<i64>());
        prop_assert!(s.tax <= s.total);
    }

    /// For the same document, DOWN ≤ HALF_UP ≤ UP, per line and in total.
    #[test]
    fn rounding_modes_are_ordered(doc in document(), included in any::<bool>()) {
        let [down, half_up, up] = TaxRounding::ALL.map(|mode| summarize(&doc, &settings(included, mode)));
        prop_assert!(down.tax <= half_up.tax && half_up.tax <= up.tax);
        for ((d, h), u) in down.lines.iter().zip(&half_up.lines).zip(&up.lines) {
            prop_assert!(d.tax <= h.tax && h.tax <= u.tax);
        }
    }

    /// Near the limit, a document is computed when its total (and, with tax on top, its grand
    /// total) fits, and refused with BadInput otherwise; a result is never wrapped.
    #[test]
    fn overflow_is_refused_never_wrapped(
        rates in prop::collection::vec(rate(), 1..=4),
        below in 0_i64..=1000,
        extra in 0_i64..=1000,
        included in any::<bool>(),
        mode in rounding(),
    ) {
        // Split MAX − below + extra over the rates, the first line taking the rest.
        let target = Money::MAX_AMOUNT - below + extra;
        let share = target / rates.len() as i64;
        let mut doc: Vec<(BasisPoints, i64)> = rates.iter().map(|r| (*r, share)).collect();
        doc[0].1 += target - share * rates.len() as i64;

        let settings = settings(included, mode);
        match tax_lines(doc.iter().copied(), &settings) {
            Ok(s) => {
                prop_assert!(target <= Money::MAX_AMOUNT);
                prop_assert_eq!(s.total, target);
                prop_assert!(s.grand_total <= Money::MAX_AMOUNT);
                prop_assert!(s.tax >= 0 && s.grand_total >= s.total);
            }
            Err(DomainError::BadInput(message)) => {
                prop_assert!(message.contains("exceeds the largest amount"), "{message}");
                // Refused only when the total or the grand total would not fit.
                let exact_tax: i128 = summarize_unchecked(&doc, &settings);
                let grand = i128::from(target) + if included { 0 } else { exact_tax };
                prop_assert!(grand > i128::from(Money::MAX_AMOUNT));
            }
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }

    /// Amounts anywhere in i64, negative or huge, give an answer or BadInput, never a panic.
    #[test]
    fn any_amount_gives_an_answer_or_bad_input(
        doc in prop::collection::vec((rate(), any::<i64>()), 0..=5),
        included in any::<bool>(),
        mode in rounding(),
    ) {
        match tax_lines(doc.iter().copied(), &settings(included, mode)) {
            Ok(s) => {
                prop_assert!(doc.iter().all(|(_, a)| *a >= 0));
                prop_assert!(0 <= s.total && s.grand_total <= Money::MAX_AMOUNT);
            }
            Err(DomainError::BadInput(_)) => {}
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }
}

/// The document's tax computed here in i128 without limits, with the same rounding per rate.
fn summarize_unchecked(doc: &[(BasisPoints, i64)], settings: &TaxSettings) -> i128 {
    let mut bases = std::collections::BTreeMap::<BasisPoints, i128>::new();
    for (rate, amount) in doc {
        *bases.entry(*rate).or_default() += i128::from(*amount);
    }
    bases
        .into_iter()
        .map(|(rate, base)| {
            let r = i128::from(rate.get());
            let d = if settings.prices_include_tax {
                10_000 + r
            } else {
                10_000
            };
            let n = base * r;
            match settings.rounding {
                TaxRounding::Down => n / d,
                TaxRounding::HalfUp => (2 * n + d) / (2 * d),
                TaxRounding::Up => (n + d - 1) / d,
            }
        })
        .sum()
}

//! Tax: rates per (tax category, service mode), and the tax of a whole document (an order, a
//! bill) computed per rate and rounded once per rate.
//!
//! The once-per-rate rounding is the rule of Japan's qualified invoices (適格請求書): "one
//! rounding per rate per invoice", never per line, with the rounding method (down, half up, up)
//! left to the issuer. Source: National Tax Agency, インボイス制度に関するQ&A, 問57 (April 2024
//! revision), on 消費税法施行令 §70-10 and 消費税法基本通達 1-8-15,
//! <https://www.nta.go.jp/taxes/shiraberu/zeimokubetsu/shohi/keigenzeiritsu/qa_invoice_mokuji.htm>.
//!
//! Amounts are integer minor units (as in [`Money`]); products are taken in `i128`, and any
//! amount beyond [`Money::MAX_AMOUNT`] is refused, never wrapped.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

use super::money::too_large;
use super::{Currency, DomainError, Money};

/// Whether the customer eats in or takes the order away; Japan taxes food differently for each.
/// GraphQL `ServiceMode`: `EAT_IN`, `TAKEOUT`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceMode {
    #[default]
    EatIn,
    // The contract spells it as one word.
    #[serde(rename = "TAKEOUT")]
    TakeOut,
}

impl ServiceMode {
    pub const ALL: [ServiceMode; 2] = [ServiceMode::EatIn, ServiceMode::TakeOut];

    /// The GraphQL enum name.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceMode::EatIn => "EAT_IN",
            ServiceMode::TakeOut => "TAKEOUT",
        }
    }

    /// The mode named `s` (a GraphQL enum name), if any.
    pub fn parse(s: &str) -> Option<ServiceMode> {
        Self::ALL.into_iter().find(|mode| mode.as_str() == s)
    }
}

impl fmt::Display for ServiceMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a menu item is for tax. GraphQL `TaxCategory`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaxCategory {
    #[default]
    Food,
    SoftDrink,
    Alcohol,
    Other,
}

impl TaxCategory {
    pub const ALL: [TaxCategory; 4] = [
        TaxCategory::Food,
        TaxCategory::SoftDrink,
        TaxCategory::Alcohol,
        TaxCategory::Other,
    ];

    /// The GraphQL enum name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaxCategory::Food => "FOOD",
            TaxCategory::SoftDrink => "SOFT_DRINK",
            TaxCategory::Alcohol => "ALCOHOL",
            TaxCategory::Other => "OTHER",
        }
    }

    /// The category named `s` (a GraphQL enum name), if any.
    pub fn parse(s: &str) -> Option<TaxCategory> {
        Self::ALL
            .into_iter()
            .find(|category| category.as_str() == s)
    }
}

impl fmt::Display for TaxCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a rate's tax is rounded to a whole minor unit, once per rate per document.
/// GraphQL `TaxRounding`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaxRounding {
    /// Toward zero: Japan's usual practice.
    #[default]
    Down,
    /// Half a minor unit and above goes up.
    HalfUp,
    /// Any fraction goes up.
    Up,
}

impl TaxRounding {
    pub const ALL: [TaxRounding; 3] = [TaxRounding::Down, TaxRounding::HalfUp, TaxRounding::Up];

    /// The GraphQL enum name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaxRounding::Down => "DOWN",
            TaxRounding::HalfUp => "HALF_UP",
            TaxRounding::Up => "UP",
        }
    }

    /// The rounding named `s` (a GraphQL enum name), if any.
    pub fn parse(s: &str) -> Option<TaxRounding> {
        Self::ALL
            .into_iter()
            .find(|rounding| rounding.as_str() == s)
    }

    /// `numerator / denominator` rounded to an integer this way. Both are ≥ 0 and the
    /// denominator > 0 (the callers' invariants), so "down" is the floor and "up" the ceiling.
    fn divide(self, numerator: i128, denominator: i128) -> i128 {
        match self {
            TaxRounding::Down => numerator / denominator,
            TaxRounding::HalfUp => (2 * numerator + denominator) / (2 * denominator),
            TaxRounding::Up => (numerator + denominator - 1) / denominator,
        }
    }
}

impl fmt::Display for TaxRounding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tax rate in basis points: 1000 is 10 %. Always within `0..=10000` (0 % to 100 %).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(try_from = "i64", into = "i64")]
pub struct BasisPoints(u16);

impl BasisPoints {
    pub const ZERO: BasisPoints = BasisPoints(0);
    /// 100 %.
    pub const MAX: u16 = 10_000;

    /// `value` as a rate. Errors: `BadInput` outside `0..=10000`.
    pub fn new(value: i64) -> Result<BasisPoints, DomainError> {
        u16::try_from(value)
            .ok()
            .filter(|v| *v <= Self::MAX)
            .map(BasisPoints)
            .ok_or_else(|| {
                DomainError::BadInput(format!(
                    "a tax rate is 0 to {} basis points, not {value}",
                    Self::MAX
                ))
            })
    }

    pub fn get(self) -> u16 {
        self.0
    }

    /// For the constants below, each within range.
    const fn known(value: u16) -> BasisPoints {
        BasisPoints(value)
    }
}

impl TryFrom<i64> for BasisPoints {
    type Error = DomainError;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        BasisPoints::new(value)
    }
}

impl From<BasisPoints> for i64 {
    fn from(rate: BasisPoints) -> i64 {
        i64::from(rate.0)
    }
}

/// The rate for one tax category in one service mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaxRule {
    pub category: TaxCategory,
    pub service_mode: ServiceMode,
    pub basis_points: BasisPoints,
}

/// A restaurant's tax rules: at most one per (category, service mode), so at most 8; kept in
/// category then mode order. A pair without a rule is taxed at 0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<TaxRule>", into = "Vec<TaxRule>")]
pub struct TaxRules(Vec<TaxRule>);

impl TaxRules {
    /// One rule per (category, mode) pair at most: 4 categories × 2 modes.
    pub const MAX_RULES: usize = TaxCategory::ALL.len() * ServiceMode::ALL.len();

    /// `rules` as a set. Errors: `BadInput` for more than [`Self::MAX_RULES`] rules or two
    /// rules for the same (category, mode).
    pub fn new(mut rules: Vec<TaxRule>) -> Result<TaxRules, DomainError> {
        if rules.len() > Self::MAX_RULES {
            return Err(DomainError::BadInput(format!(
                "at most {} tax rules, not {}",
                Self::MAX_RULES,
                rules.len()
            )));
        }
        rules.sort_by_key(|rule| (rule.category, rule.service_mode));
        if let Some(pair) = rules.windows(2).find(|pair| {
            (pair[0].category, pair[0].service_mode) == (pair[1].category, pair[1].service_mode)
        }) {
            return Err(DomainError::BadInput(format!(
                "two tax rules for {} {}",
                pair[0].category, pair[0].service_mode
            )));
        }
        Ok(TaxRules(rules))
    }

    /// No rules: everything taxed at 0.
    pub fn none() -> TaxRules {
        TaxRules(Vec::new())
    }

    /// Japan's consumption tax: 10 %, except food and non-alcoholic drinks taken away at the
    /// reduced 8 % (alcohol is never reduced; eating in is a service, taxed at 10 %).
    /// Source: National Tax Agency, 消費税の軽減税率制度について,
    /// <https://www.nta.go.jp/taxes/shiraberu/zeimokubetsu/shohi/keigenzeiritsu/index.htm>.
    pub fn japan() -> TaxRules {
        const STANDARD: BasisPoints = BasisPoints::known(1000);
        const REDUCED: BasisPoints = BasisPoints::known(800);
        let rule = |category, service_mode, basis_points| TaxRule {
            category,
            service_mode,
            basis_points,
        };
        TaxRules(vec![
            rule(TaxCategory::Food, ServiceMode::EatIn, STANDARD),
            rule(TaxCategory::Food, ServiceMode::TakeOut, REDUCED),
            rule(TaxCategory::SoftDrink, ServiceMode::EatIn, STANDARD),
            rule(TaxCategory::SoftDrink, ServiceMode::TakeOut, REDUCED),
            rule(TaxCategory::Alcohol, ServiceMode::EatIn, STANDARD),
            rule(TaxCategory::Alcohol, ServiceMode::TakeOut, STANDARD),
            rule(TaxCategory::Other, ServiceMode::EatIn, STANDARD),
            rule(TaxCategory::Other, ServiceMode::TakeOut, STANDARD),
        ])
    }

    /// The rules of a restaurant created without any: Japan's for JPY, none for the rest (we
    /// know no other country's rates well enough to guess them).
    pub fn default_for(currency: &Currency) -> TaxRules {
        if currency.as_str() == "JPY" {
            Self::japan()
        } else {
            Self::none()
        }
    }

    /// The rate for `category` in `mode`; 0 when no rule names the pair.
    pub fn rate(&self, category: TaxCategory, mode: ServiceMode) -> BasisPoints {
        self.0
            .iter()
            .find(|rule| rule.category == category && rule.service_mode == mode)
            .map_or(BasisPoints::ZERO, |rule| rule.basis_points)
    }

    pub fn as_slice(&self) -> &[TaxRule] {
        &self.0
    }
}

impl TryFrom<Vec<TaxRule>> for TaxRules {
    type Error = DomainError;
    fn try_from(rules: Vec<TaxRule>) -> Result<Self, Self::Error> {
        TaxRules::new(rules)
    }
}

impl From<TaxRules> for Vec<TaxRule> {
    fn from(rules: TaxRules) -> Vec<TaxRule> {
        rules.0
    }
}

/// How a restaurant taxes: whether its prices include tax, its rates, and its rounding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxSettings {
    /// Menu prices include tax (Japan and the EU require it for consumers): the tax is the part
    /// of each rate's base that is tax, and the grand total is the total. Otherwise the tax is
    /// added on top.
    pub prices_include_tax: bool,
    pub rules: TaxRules,
    pub rounding: TaxRounding,
}

/// No tax: prices as entered, every rate 0 %.
impl Default for TaxSettings {
    fn default() -> Self {
        TaxSettings {
            prices_include_tax: true,
            rules: TaxRules::none(),
            rounding: TaxRounding::Down,
        }
    }
}

impl TaxSettings {
    /// The settings of a restaurant created with none given, as `createRestaurant` documents
    /// them: prices include tax and rounding is DOWN for every currency; Japan's rules for
    /// JPY, none (0 %) for others. Included prices for every currency because that is what the
    /// contract promises and what Japan and the EU require of prices shown to consumers; with
    /// no rules the choice changes nothing until a manager sets rates.
    pub fn default_for(currency: &Currency) -> TaxSettings {
        TaxSettings {
            prices_include_tax: true,
            rules: TaxRules::default_for(currency),
            rounding: TaxRounding::Down,
        }
    }
}

/// The tax at one rate over one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxLine {
    pub basis_points: BasisPoints,
    /// Minor units: the sum of the document's amounts at this rate (tax included when prices
    /// include tax).
    pub base: i64,
    /// Minor units: the tax in `base`, or on top of it when prices exclude tax; rounded once.
    pub tax: i64,
}

/// The tax of one document. All amounts in minor units, each within `0..=Money::MAX_AMOUNT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxSummary {
    /// One line per distinct rate among the amounts (0 % included), ascending by rate.
    pub lines: Vec<TaxLine>,
    /// The sum of the amounts (of the lines' bases).
    pub total: i64,
    /// The sum of the lines' taxes.
    pub tax: i64,
    /// What the customer pays: `total + tax` when prices exclude tax, else `total`.
    pub grand_total: i64,
}

/// The tax of a document whose lines are `amounts`: (rate, amount in minor units) pairs, e.g.
/// each order line's rate and subtotal. Amounts are summed per rate and each rate's tax is
/// rounded once with `settings.rounding` (see the module's doc for the rule's source):
/// `base × r / (10000 + r)` when prices include tax, else `base × r / 10000`, r in basis points.
/// Lines the document should not show (none at a rate) are simply left out of `amounts`.
///
/// Errors: `BadInput` when an amount is negative, or when the total or the grand total exceeds
/// [`Money::MAX_AMOUNT`].
pub fn tax_lines(
    amounts: impl IntoIterator<Item = (BasisPoints, i64)>,
    settings: &TaxSettings,
) -> Result<TaxSummary, DomainError> {
    let mut bases: BTreeMap<BasisPoints, i64> = BTreeMap::new();
    let mut total: i64 = 0;
    for (rate, amount) in amounts {
        if amount < 0 {
            return Err(DomainError::BadInput(format!(
                "a taxed amount cannot be negative, not {amount}"
            )));
        }
        // Checked at every step, so neither sum can leave i64 before it is refused.
        total = total
            .checked_add(amount)
            .filter(|t| *t <= Money::MAX_AMOUNT)
            .ok_or_else(|| too_large("the total"))?;
        *bases.entry(rate).or_insert(0) += amount;
    }

    let lines: Vec<TaxLine> = bases
        .into_iter()
        .map(|(rate, base)| TaxLine {
            basis_points: rate,
            base,
            tax: rate_tax(base, rate, settings),
        })
        .collect();
    // Each line's tax is at most its base (r ≤ 100 %), so this sum is at most the total.
    let tax: i64 = lines.iter().map(|line| line.tax).sum();
    let grand_total = if settings.prices_include_tax {
        total
    } else {
        total
            .checked_add(tax)
            .filter(|t| *t <= Money::MAX_AMOUNT)
            .ok_or_else(|| too_large("the total with tax"))?
    };
    Ok(TaxSummary {
        lines,
        total,
        tax,
        grand_total,
    })
}

/// The tax at `rate` on a base of `base` minor units (0 ≤ base ≤ MAX_AMOUNT), rounded once.
fn rate_tax(base: i64, rate: BasisPoints, settings: &TaxSettings) -> i64 {
    let r = i128::from(rate.get());
    let full = i128::from(BasisPoints::MAX);
    let denominator = if settings.prices_include_tax {
        full + r
    } else {
        full
    };
    // At most 2^31 × 10^4: far inside i128; the quotient is at most `base`, so it fits in i64.
    let tax = settings.rounding.divide(i128::from(base) * r, denominator);
    i64::try_from(tax).unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bp(value: i64) -> BasisPoints {
        BasisPoints::new(value).unwrap()
    }

    fn settings(prices_include_tax: bool, rounding: TaxRounding) -> TaxSettings {
        TaxSettings {
            prices_include_tax,
            rules: TaxRules::japan(),
            rounding,
        }
    }

    fn summary(amounts: &[(i64, i64)], settings: &TaxSettings) -> TaxSummary {
        tax_lines(amounts.iter().map(|&(r, a)| (bp(r), a)), settings).unwrap()
    }

    #[test]
    fn enum_names_are_the_contracts() {
        for mode in ServiceMode::ALL {
            assert_eq!(ServiceMode::parse(mode.as_str()), Some(mode));
            let json = serde_json::to_string(&mode).unwrap();
            assert_eq!(json, format!("\"{}\"", mode.as_str()));
        }
        for category in TaxCategory::ALL {
            assert_eq!(TaxCategory::parse(category.as_str()), Some(category));
            let json = serde_json::to_string(&category).unwrap();
            assert_eq!(json, format!("\"{}\"", category.as_str()));
        }
        for rounding in TaxRounding::ALL {
            assert_eq!(TaxRounding::parse(rounding.as_str()), Some(rounding));
            let json = serde_json::to_string(&rounding).unwrap();
            assert_eq!(json, format!("\"{}\"", rounding.as_str()));
        }
        assert_eq!(ServiceMode::TakeOut.as_str(), "TAKEOUT");
        assert_eq!(ServiceMode::parse("TAKE_OUT"), None);
        assert_eq!(TaxCategory::parse("food"), None);
        assert_eq!(ServiceMode::default(), ServiceMode::EatIn);
        assert_eq!(TaxCategory::default(), TaxCategory::Food);
        assert_eq!(TaxRounding::default(), TaxRounding::Down);
    }

    #[test]
    fn basis_points_are_0_to_10000() {
        assert_eq!(bp(0).get(), 0);
        assert_eq!(bp(10_000).get(), 10_000);
        for bad in [-1, 10_001, i64::from(u16::MAX) + 1, i64::MIN, i64::MAX] {
            match BasisPoints::new(bad) {
                Err(DomainError::BadInput(message)) => assert!(message.contains("0 to 10000")),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert_eq!(serde_json::from_str::<BasisPoints>("800").unwrap(), bp(800));
        assert!(serde_json::from_str::<BasisPoints>("10001").is_err());
        assert_eq!(serde_json::to_string(&bp(800)).unwrap(), "800");
    }

    #[test]
    fn rules_are_a_set_of_at_most_eight() {
        let rule = |category, service_mode, r| TaxRule {
            category,
            service_mode,
            basis_points: bp(r),
        };
        let twice = vec![
            rule(TaxCategory::Food, ServiceMode::EatIn, 1000),
            rule(TaxCategory::Alcohol, ServiceMode::EatIn, 1000),
            rule(TaxCategory::Food, ServiceMode::EatIn, 800),
        ];
        assert!(matches!(
            TaxRules::new(twice),
            Err(DomainError::BadInput(m)) if m.contains("FOOD EAT_IN")
        ));
        let mut nine = TaxRules::japan().as_slice().to_vec();
        nine.push(rule(TaxCategory::Food, ServiceMode::EatIn, 0));
        assert!(matches!(TaxRules::new(nine), Err(DomainError::BadInput(_))));

        // Any order in, one order out: the same set compares equal.
        let mut reversed = TaxRules::japan().as_slice().to_vec();
        reversed.reverse();
        assert_eq!(TaxRules::new(reversed).unwrap(), TaxRules::japan());

        let json = serde_json::to_string(&TaxRules::japan()).unwrap();
        assert_eq!(
            serde_json::from_str::<TaxRules>(&json).unwrap(),
            TaxRules::japan()
        );
        let duplicate = r#"[{"category":"FOOD","service_mode":"EAT_IN","basis_points":1000},
                            {"category":"FOOD","service_mode":"EAT_IN","basis_points":800}]"#;
        assert!(serde_json::from_str::<TaxRules>(duplicate).is_err());
    }

    #[test]
    fn japan_rates_and_missing_rules() {
        let japan = TaxRules::japan();
        use ServiceMode::*;
        use TaxCategory::*;
        assert_eq!(japan.rate(Food, EatIn), bp(1000));
        assert_eq!(japan.rate(Food, TakeOut), bp(800));
        assert_eq!(japan.rate(SoftDrink, EatIn), bp(1000));
        assert_eq!(japan.rate(SoftDrink, TakeOut), bp(800));
        assert_eq!(japan.rate(Alcohol, TakeOut), bp(1000));
        assert_eq!(japan.rate(Other, TakeOut), bp(1000));
        assert!(TaxRules::new(japan.as_slice().to_vec()).is_ok());

        let partial = TaxRules::new(vec![TaxRule {
            category: Alcohol,
            service_mode: EatIn,
            basis_points: bp(2000),
        }])
        .unwrap();
        assert_eq!(partial.rate(Alcohol, EatIn), bp(2000));
        assert_eq!(partial.rate(Alcohol, TakeOut), BasisPoints::ZERO);
        assert_eq!(TaxRules::none().rate(Food, EatIn), BasisPoints::ZERO);
    }

    #[test]
    fn defaults_by_currency() {
        let jpy = TaxSettings::default_for(&Currency::parse("JPY").unwrap());
        assert!(jpy.prices_include_tax);
        assert_eq!(jpy.rules, TaxRules::japan());
        assert_eq!(jpy.rounding, TaxRounding::Down);
        let eur = TaxSettings::default_for(&Currency::parse("EUR").unwrap());
        assert!(eur.prices_include_tax);
        assert_eq!(eur.rules, TaxRules::none());
        assert_eq!(eur.rounding, TaxRounding::Down);
    }

    #[test]
    fn takeout_food_with_tax_included() {
        // ¥1,080 at 8 %: 1080 × 800 / 10800 = 80 exactly.
        let s = summary(&[(800, 1080)], &settings(true, TaxRounding::Down));
        let line = TaxLine {
            basis_points: bp(800),
            base: 1080,
            tax: 80,
        };
        assert_eq!(
            s,
            TaxSummary {
                lines: vec![line],
                total: 1080,
                tax: 80,
                grand_total: 1080
            }
        );
    }

    #[test]
    fn included_tax_rounds_by_the_restaurants_mode() {
        // ¥1,000 + ¥550 at 10 %: 1550 × 1000 / 11000 = 140.909…
        let amounts = [(1000, 1000), (1000, 550)];
        let tax = |rounding| summary(&amounts, &settings(true, rounding));
        let down = tax(TaxRounding::Down);
        assert_eq!((down.lines.len(), down.lines[0].base), (1, 1550));
        assert_eq!((down.tax, down.grand_total), (140, 1550));
        assert_eq!(tax(TaxRounding::HalfUp).tax, 141);
        assert_eq!(tax(TaxRounding::Up).tax, 141);
    }

    #[test]
    fn excluded_tax_goes_on_top() {
        // ¥999 at 8 % on top: 79.92.
        let tax = |rounding| summary(&[(800, 999)], &settings(false, rounding));
        assert_eq!(
            (
                tax(TaxRounding::Down).tax,
                tax(TaxRounding::Down).grand_total
            ),
            (79, 1078)
        );
        assert_eq!(tax(TaxRounding::HalfUp).tax, 80);
        assert_eq!(tax(TaxRounding::Up).tax, 80);
        // Exactly half a unit: ¥5 at 10 % = 0.5.
        let half = |rounding| summary(&[(1000, 5)], &settings(false, rounding)).tax;
        assert_eq!(
            (
                half(TaxRounding::Down),
                half(TaxRounding::HalfUp),
                half(TaxRounding::Up)
            ),
            (0, 1, 1)
        );
    }

    #[test]
    fn one_rounding_per_rate_is_not_one_per_line() {
        // Two ¥105 dishes eaten in: 9.54… each, 19.09… together. Rounding down each line
        // would give 9 + 9 = 18; the document's tax is 19.
        let s = summary(
            &[(1000, 105), (1000, 105)],
            &settings(true, TaxRounding::Down),
        );
        assert_eq!(s.tax, 19);
        let per_line: i64 = [105_i64, 105].iter().map(|a| a * 1000 / 11000).sum();
        assert_eq!(per_line, 18);
    }

    #[test]
    fn lines_per_rate_ascending_zero_included() {
        // A takeout meal (8 %), a beer (10 %) and a service with no rule (0 %).
        let s = summary(
            &[(1000, 660), (800, 540), (0, 300), (800, 324)],
            &settings(true, TaxRounding::Down),
        );
        let rates: Vec<u16> = s.lines.iter().map(|l| l.basis_points.get()).collect();
        assert_eq!(rates, [0, 800, 1000]);
        let taxes: Vec<(i64, i64)> = s.lines.iter().map(|l| (l.base, l.tax)).collect();
        // 864 × 8 / 108 = 64; 660 × 10 / 110 = 60.
        assert_eq!(taxes, [(300, 0), (864, 64), (660, 60)]);
        assert_eq!((s.total, s.tax, s.grand_total), (1824, 124, 1824));
    }

    #[test]
    fn empty_documents_and_whole_rates() {
        let empty = summary(&[], &settings(false, TaxRounding::Up));
        assert_eq!(
            (empty.lines.len(), empty.total, empty.grand_total),
            (0, 0, 0)
        );
        // 100 % on top doubles; 100 % included is half.
        assert_eq!(
            summary(&[(10_000, 7)], &settings(false, TaxRounding::Down)).grand_total,
            14
        );
        assert_eq!(
            summary(&[(10_000, 7)], &settings(true, TaxRounding::Down)).tax,
            3
        );
        assert_eq!(
            summary(&[(10_000, 7)], &settings(true, TaxRounding::Up)).tax,
            4
        );
    }

    #[test]
    fn overflow_and_negatives_are_refused() {
        let max = Money::MAX_AMOUNT;
        let included = settings(true, TaxRounding::Up);
        let excluded = settings(false, TaxRounding::Up);
        let run = |amounts: Vec<(i64, i64)>, s: &TaxSettings| {
            tax_lines(amounts.into_iter().map(|(r, a)| (bp(r), a)), s)
        };
        assert_eq!(run(vec![(1000, max)], &included).unwrap().grand_total, max);
        assert!(matches!(
            run(vec![(1000, max), (800, 1)], &included),
            Err(DomainError::BadInput(_))
        ));
        assert!(matches!(
            run(vec![(1000, max)], &excluded),
            Err(DomainError::BadInput(_))
        ));
        assert!(run(vec![(0, max)], &excluded).is_ok());
        for huge in [i64::MAX, max + 1] {
            assert!(run(vec![(1000, huge)], &included).is_err());
            assert!(run(vec![(1000, 1), (1000, huge)], &included).is_err());
        }
        assert!(run(vec![(1000, i64::MAX), (1000, i64::MAX)], &included).is_err());
        assert!(run(vec![(1000, -1)], &included).is_err());
        assert!(run(vec![(1000, i64::MIN)], &excluded).is_err());
    }
}

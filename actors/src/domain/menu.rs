use serde::{Deserialize, Serialize};

use super::locale::{check_translations, pick, Translation};
use super::options::{check_option_groups, NewOptionGroup, OptionGroup, OptionId};
use super::tax::{TaxCategory, TaxSettings};
use super::{
    check_name, check_text, BusinessDay, BusinessDayStart, Currency, DomainError, MenuItemId,
    Money, RestaurantId, StaffCallId, TableId, TimeZone, Timestamp,
};

pub const DEFAULT_CURRENCY: &str = "JPY";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restaurant {
    pub id: RestaurantId,
    pub name: String,
    pub currency: Currency,
    /// The restaurant's clock: business days, and so ticket numbers, follow its local time.
    pub time_zone: TimeZone,
    /// The local time at which each business day starts.
    pub day_starts_at: BusinessDayStart,
    pub tax: TaxSettings,
}

impl Restaurant {
    /// The business day at `at` on this restaurant's clock.
    pub fn business_day(&self, at: Timestamp) -> BusinessDay {
        BusinessDay::of(at, &self.time_zone, self.day_starts_at)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub id: TableId,
    pub restaurant_id: RestaurantId,
    pub name: String,
}

/// Allergens that menus must declare: the union of Japan's mandatory eight (食品表示基準
/// 別表第十四: egg, milk, wheat, buckwheat, peanut, shrimp, crab, walnut) and the EU's fourteen
/// (Regulation (EU) No 1169/2011, Annex II). GraphQL `Allergen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Allergen {
    Egg,
    Milk,
    Wheat,
    Buckwheat,
    Peanut,
    Shrimp,
    Crab,
    Walnut,
    /// Tree nuts other than walnut.
    TreeNuts,
    Soy,
    Sesame,
    Fish,
    Molluscs,
    Celery,
    Mustard,
    Sulphites,
    Lupin,
    /// Gluten-containing cereals other than wheat (barley, rye, oats).
    Gluten,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MenuItem {
    pub id: MenuItemId,
    pub restaurant_id: RestaurantId,
    pub name: String,
    pub price: Money,
    /// False while sold out.
    pub available: bool,
    // The defaults read events stored before these fields.
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub translations: Vec<Translation>,
    /// Each once, in [`Allergen`]'s order.
    #[serde(default)]
    pub allergens: Vec<Allergen>,
    #[serde(default)]
    pub tax_category: TaxCategory,
    /// Typical preparation time, for estimates.
    #[serde(default = "default_prep_seconds")]
    pub prep_seconds: i64,
    #[serde(default)]
    pub option_groups: Vec<OptionGroup>,
    /// 1 when created; grows by 1 on every change to the item, its options or their
    /// availability.
    #[serde(default = "first_version")]
    pub version: i64,
    /// Off the menu; orders already placed keep their copy of it.
    #[serde(default)]
    pub archived: bool,
    /// Place on the menu, 0 first.
    #[serde(default)]
    pub position: i64,
}

fn default_prep_seconds() -> i64 {
    DEFAULT_PREP_SECONDS
}

fn first_version() -> i64 {
    1
}

impl MenuItem {
    /// The name in `locale` ([`pick`]: the exact tag, then its language), else its own.
    pub fn name_in(&self, locale: Option<&str>) -> &str {
        pick(&self.translations, locale).map_or(&self.name, |t| &t.name)
    }

    /// The description in `locale` as for the name, else its own.
    pub fn description_in(&self, locale: Option<&str>) -> Option<&str> {
        match pick(&self.translations, locale) {
            Some(t) => t.description.as_deref().or(self.description.as_deref()),
            None => self.description.as_deref(),
        }
    }

    /// The item with `option` made available or not; `None` when it has no such option.
    pub fn with_option_available(&self, option: &OptionId, available: bool) -> Option<MenuItem> {
        let mut item = self.clone();
        let found = item
            .option_groups
            .iter_mut()
            .flat_map(|g| g.options.iter_mut())
            .find(|o| &o.id == option)?;
        found.available = available;
        Some(item)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffCall {
    pub id: StaffCallId,
    pub restaurant_id: RestaurantId,
    pub table_id: TableId,
    pub message: Option<String>,
    pub at: Timestamp,
}

impl StaffCall {
    pub const MAX_MESSAGE_CHARS: usize = 200;

    pub fn new(
        table: &Table,
        message: Option<String>,
        at: Timestamp,
    ) -> Result<StaffCall, DomainError> {
        let message = match message {
            Some(mut message) => {
                check_text("message", &mut message, Self::MAX_MESSAGE_CHARS)?;
                Some(message)
            }
            None => None,
        };
        Ok(StaffCall {
            id: StaffCallId::generate(),
            restaurant_id: table.restaurant_id.clone(),
            table_id: table.id.clone(),
            message,
            at,
        })
    }
}

/// A restaurant as a client asks for it; `None` takes the default.
#[derive(Debug, Clone, Default)]
pub struct NewRestaurant {
    pub name: String,
    /// ISO 4217; defaults to [`DEFAULT_CURRENCY`].
    pub currency: Option<String>,
    /// An IANA name; defaults to [`TimeZone::default_for`] the currency.
    pub time_zone: Option<String>,
    /// `HH:MM`; defaults to [`BusinessDayStart::DEFAULT`].
    pub business_day_starts_at: Option<String>,
    /// Each `None` takes [`TaxSettings::default_for`] the currency.
    pub tax: TaxSettingsChange,
}

/// The longest restaurant name, in grapheme clusters.
pub const MAX_RESTAURANT_NAME: usize = 100;

/// Checks a new restaurant: `BadInput` for a blank or overlong name, an unknown currency or
/// time zone, or a start time that is not `HH:MM`.
pub fn validate_restaurant(input: NewRestaurant) -> Result<Restaurant, DomainError> {
    let name = check_name("name", &input.name, MAX_RESTAURANT_NAME)?;
    let currency = Currency::parse(input.currency.as_deref().unwrap_or(DEFAULT_CURRENCY))?;
    let time_zone = match input.time_zone.as_deref() {
        Some(zone) => TimeZone::parse(zone)?,
        None => TimeZone::default_for(&currency),
    };
    let day_starts_at = match input.business_day_starts_at.as_deref() {
        Some(start) => BusinessDayStart::parse(start)?,
        None => BusinessDayStart::DEFAULT,
    };
    let tax = input.tax.apply(&TaxSettings::default_for(&currency));
    Ok(Restaurant {
        id: RestaurantId::generate(),
        name,
        currency,
        time_zone,
        day_starts_at,
        tax,
    })
}

/// A change to a restaurant's tax settings: only what is given changes. The rules, when
/// given, replace every rule; they were checked when the `TaxRules` was made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaxSettingsChange {
    pub prices_include_tax: Option<bool>,
    pub rules: Option<super::tax::TaxRules>,
    pub rounding: Option<super::tax::TaxRounding>,
}

impl TaxSettingsChange {
    pub fn apply(&self, settings: &TaxSettings) -> TaxSettings {
        TaxSettings {
            prices_include_tax: self
                .prices_include_tax
                .unwrap_or(settings.prices_include_tax),
            rules: self.rules.clone().unwrap_or_else(|| settings.rules.clone()),
            rounding: self.rounding.unwrap_or(settings.rounding),
        }
    }
}

/// A change to a restaurant's settings as a client asks for it: only what is given changes.
#[derive(Debug, Clone, Default)]
pub struct RestaurantSettings {
    pub name: Option<String>,
    /// An IANA name.
    pub time_zone: Option<String>,
    /// `HH:MM`.
    pub business_day_starts_at: Option<String>,
}

/// A checked [`RestaurantSettings`], to apply to the restaurant as it is when locked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsChange {
    name: Option<String>,
    time_zone: Option<TimeZone>,
    day_starts_at: Option<BusinessDayStart>,
}

impl SettingsChange {
    /// Checks each given field with the rules of [`validate_restaurant`]; `BadInput` else.
    pub fn validate(input: RestaurantSettings) -> Result<Self, DomainError> {
        Ok(Self {
            name: input
                .name
                .map(|name| check_name("name", &name, MAX_RESTAURANT_NAME))
                .transpose()?,
            time_zone: input
                .time_zone
                .as_deref()
                .map(TimeZone::parse)
                .transpose()?,
            day_starts_at: input
                .business_day_starts_at
                .as_deref()
                .map(BusinessDayStart::parse)
                .transpose()?,
        })
    }

    /// The restaurant with the given fields changed and the rest as they were.
    pub fn apply(&self, restaurant: &Restaurant) -> Restaurant {
        Restaurant {
            id: restaurant.id.clone(),
            name: self.name.clone().unwrap_or_else(|| restaurant.name.clone()),
            currency: restaurant.currency.clone(),
            time_zone: self
                .time_zone
                .clone()
                .unwrap_or_else(|| restaurant.time_zone.clone()),
            day_starts_at: self.day_starts_at.unwrap_or(restaurant.day_starts_at),
            tax: restaurant.tax.clone(),
        }
    }
}

pub fn validate_table_name(name: &str) -> Result<String, DomainError> {
    check_name("name", name, 50)
}

/// The longest item name, in characters.
pub const MAX_ITEM_NAME_CHARS: usize = 100;
/// The longest item description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// The longest preparation time an item may state: a day.
pub const MAX_PREP_SECONDS: i64 = 86_400;
/// A new item's preparation time when none is given.
pub const DEFAULT_PREP_SECONDS: i64 = 300;

/// An item as a client describes it; `None` takes the default.
#[derive(Debug, Clone, Default)]
pub struct NewMenuItem {
    pub name: String,
    pub price: i64,
    pub available: Option<bool>,
    pub description: Option<String>,
    /// (locale, name, description)
    pub translations: Vec<(String, String, Option<String>)>,
    pub allergens: Vec<Allergen>,
    pub tax_category: Option<TaxCategory>,
    pub prep_seconds: Option<i64>,
    pub option_groups: Vec<NewOptionGroup>,
}

/// A change to an item: only what is given changes.
#[derive(Debug, Clone, Default)]
pub struct MenuItemUpdate {
    pub name: Option<String>,
    pub price: Option<i64>,
    /// `Some(None)` clears it.
    pub description: Option<Option<String>>,
    pub translations: Option<Vec<(String, String, Option<String>)>>,
    pub allergens: Option<Vec<Allergen>>,
    pub tax_category: Option<TaxCategory>,
    pub prep_seconds: Option<i64>,
    /// Replaces the groups; see [`check_option_groups`] for which ids stay.
    pub option_groups: Option<Vec<NewOptionGroup>>,
    /// 0-based place on the menu.
    pub position: Option<i64>,
}

/// Checks a new item for `restaurant`, to go last on a menu of `menu_len` items. `BadInput`
/// for a blank or overlong name or description, a price or delta outside 0 to
/// [`Money::MAX_AMOUNT`], a preparation time outside 0 to [`MAX_PREP_SECONDS`], bad
/// translations (`locale`) or option groups (`options`).
pub fn validate_menu_item(
    restaurant: &Restaurant,
    input: NewMenuItem,
    menu_len: usize,
) -> Result<MenuItem, DomainError> {
    let id = MenuItemId::generate();
    let item = MenuItem {
        restaurant_id: restaurant.id.clone(),
        name: check_name("name", &input.name, MAX_ITEM_NAME_CHARS)?,
        price: Money::new(
            check_price("price", input.price)?,
            restaurant.currency.clone(),
        ),
        available: input.available.unwrap_or(true),
        description: check_description(input.description)?,
        translations: check_translations(
            input.translations,
            MAX_ITEM_NAME_CHARS,
            MAX_DESCRIPTION_CHARS,
        )?,
        allergens: allergens(input.allergens),
        tax_category: input.tax_category.unwrap_or_default(),
        prep_seconds: check_prep(input.prep_seconds.unwrap_or(DEFAULT_PREP_SECONDS))?,
        option_groups: check_option_groups(&id, input.option_groups, &[])?,
        version: 1,
        archived: false,
        position: i64::try_from(menu_len).unwrap_or(i64::MAX),
        id,
    };
    Ok(item)
}

impl MenuItemUpdate {
    /// The item with the given fields changed, one version up, checked as
    /// [`validate_menu_item`] checks; the position is left to [`reorder`].
    pub fn apply(self, item: &MenuItem) -> Result<MenuItem, DomainError> {
        let mut changed = item.clone();
        if let Some(name) = self.name {
            changed.name = check_name("name", &name, MAX_ITEM_NAME_CHARS)?;
        }
        if let Some(price) = self.price {
            changed.price = Money::new(check_price("price", price)?, item.price.currency.clone());
        }
        if let Some(description) = self.description {
            changed.description = check_description(description)?;
        }
        if let Some(translations) = self.translations {
            changed.translations =
                check_translations(translations, MAX_ITEM_NAME_CHARS, MAX_DESCRIPTION_CHARS)?;
        }
        if let Some(list) = self.allergens {
            changed.allergens = allergens(list);
        }
        if let Some(category) = self.tax_category {
            changed.tax_category = category;
        }
        if let Some(seconds) = self.prep_seconds {
            changed.prep_seconds = check_prep(seconds)?;
        }
        if let Some(groups) = self.option_groups {
            changed.option_groups = check_option_groups(&item.id, groups, &item.option_groups)?;
        }
        changed.version = item.version + 1;
        Ok(changed)
    }
}

/// The menu with `item` moved to `position` (clamped to the menu), each item's `position`
/// renumbered 0, 1, 2 …; returns the items whose position changed. `menu` is every item not
/// archived, in display order.
pub fn reorder(menu: &[MenuItem], item: &MenuItemId, position: i64) -> Vec<MenuItem> {
    let mut order: Vec<&MenuItem> = menu.iter().filter(|m| &m.id != item).collect();
    let Some(moved) = menu.iter().find(|m| &m.id == item) else {
        return Vec::new();
    };
    let at = usize::try_from(position.max(0))
        .unwrap_or(usize::MAX)
        .min(order.len());
    order.insert(at, moved);
    order
        .into_iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let i = i64::try_from(i).unwrap_or(i64::MAX);
            (m.position != i).then(|| MenuItem {
                position: i,
                ..m.clone()
            })
        })
        .collect()
}

fn check_price(field: &str, price: i64) -> Result<i64, DomainError> {
    if !(0..=Money::MAX_AMOUNT).contains(&price) {
        return Err(DomainError::BadInput(format!(
            "{field} must be between 0 and {} minor units",
            Money::MAX_AMOUNT
        )));
    }
    Ok(price)
}

fn check_description(description: Option<String>) -> Result<Option<String>, DomainError> {
    description
        .map(|mut d| check_text("description", &mut d, MAX_DESCRIPTION_CHARS).map(|()| d))
        .transpose()
}

fn check_prep(seconds: i64) -> Result<i64, DomainError> {
    if !(0..=MAX_PREP_SECONDS).contains(&seconds) {
        return Err(DomainError::BadInput(format!(
            "prepSeconds must be 0 to {MAX_PREP_SECONDS}"
        )));
    }
    Ok(seconds)
}

fn allergens(mut list: Vec<Allergen>) -> Vec<Allergen> {
    list.sort();
    list.dedup();
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restaurant() -> Restaurant {
        validate_restaurant(NewRestaurant {
            name: " Bistro ".into(),
            ..NewRestaurant::default()
        })
        .unwrap()
    }

    #[test]
    fn restaurants_default_to_yen_and_trim_names() {
        let r = restaurant();
        assert_eq!(r.currency.as_str(), "JPY");
        assert_eq!(r.name, "Bistro");
        assert!(validate_restaurant(NewRestaurant {
            name: "  ".into(),
            ..NewRestaurant::default()
        })
        .is_err());
        assert!(validate_restaurant(NewRestaurant {
            name: "x".into(),
            currency: Some("yen".into()),
            ..NewRestaurant::default()
        })
        .is_err());
    }

    #[test]
    fn menu_prices_are_bounded() {
        let r = restaurant();
        let item = |price| {
            validate_menu_item(
                &r,
                NewMenuItem {
                    name: "Ramen".into(),
                    price,
                    ..NewMenuItem::default()
                },
                0,
            )
        };
        assert!(item(0).unwrap().available);
        assert!(item(-1).is_err());
        assert!(item(Money::MAX_AMOUNT + 1).is_err());
    }

    #[test]
    fn staff_call_messages_refuse_control_characters() {
        let table = Table {
            id: TableId::generate(),
            restaurant_id: restaurant().id,
            name: "T1".into(),
        };
        assert!(StaffCall::new(&table, Some("water please".into()), Timestamp(0)).is_ok());
        assert!(StaffCall::new(&table, Some("bell\u{7}".into()), Timestamp(0)).is_err());
        assert!(StaffCall::new(&table, Some("x".repeat(201)), Timestamp(0)).is_err());
    }
}

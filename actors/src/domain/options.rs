//! A menu item's option groups (noodle firmness, toppings, size) and the choices of one line.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

use super::locale::{check_name_translations, pick, NameTranslation};
use super::{check_name, DomainError, MenuItemId, Money};

pub const MAX_GROUPS: usize = 20;
pub const MAX_OPTIONS_PER_GROUP: usize = 50;
const MAX_OPTION_NAME_CHARS: usize = 60;

macro_rules! part_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            fn new(item: &MenuItemId, number: u32) -> Self {
                Self(format!("{item}_{number}"))
            }

            /// An id of this form from a client; `None` for anything else.
            pub fn parse(s: &str) -> Option<Self> {
                let (item, number) = s.rsplit_once('_')?;
                MenuItemId::parse(item)?;
                let digits = !number.is_empty()
                    && number.len() <= 9
                    && number.bytes().all(|b| b.is_ascii_digit());
                digits.then(|| Self(s.to_owned()))
            }

            /// The menu item it belongs to: the part before the last `_`.
            pub fn menu_item_id(&self) -> MenuItemId {
                let item = self.0.rsplit_once('_').map_or("", |(item, _)| item);
                MenuItemId::from_trusted(item.to_owned())
            }

            fn number(&self) -> u32 {
                self.0
                    .rsplit_once('_')
                    .and_then(|(_, n)| n.parse().ok())
                    .unwrap_or(0)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

part_id!(
    /// `<menu item id>_<n>`: it names its item, so the item of an option a client names is
    /// found without an index, and `n` tells it from the item's other groups and options.
    OptionId
);
part_id!(
    /// As [`OptionId`], from the same numbers.
    OptionGroupId
);

/// Choices the customer makes on one item, e.g. "Noodles: choose 1".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptionGroup {
    pub id: OptionGroupId,
    pub name: String,
    pub translations: Vec<NameTranslation>,
    /// How many options must be chosen: 0 makes the group optional.
    pub min_selected: i64,
    /// At least `min_selected` and at least 1.
    pub max_selected: i64,
    pub options: Vec<MenuOption>,
}

impl OptionGroup {
    /// The name in `locale`, as [`pick`] finds it, else the group's own.
    pub fn name_in(&self, locale: Option<&str>) -> &str {
        pick(&self.translations, locale).map_or(&self.name, |t| &t.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MenuOption {
    pub id: OptionId,
    pub name: String,
    pub translations: Vec<NameTranslation>,
    /// Minor units added to the item's price per unit ordered; 0 or more.
    pub price_delta: i64,
    pub available: bool,
}

impl MenuOption {
    pub fn name_in(&self, locale: Option<&str>) -> &str {
        pick(&self.translations, locale).map_or(&self.name, |t| &t.name)
    }
}

/// A group as a client describes it.
#[derive(Debug, Clone, Default)]
pub struct NewOptionGroup {
    pub name: String,
    pub translations: Vec<(String, String)>,
    pub min_selected: i64,
    pub max_selected: i64,
    pub options: Vec<NewMenuOption>,
}

#[derive(Debug, Clone, Default)]
pub struct NewMenuOption {
    pub name: String,
    pub translations: Vec<(String, String)>,
    pub price_delta: i64,
    pub available: Option<bool>,
}

/// Checks the groups a client gave for `item` and gives them ids. An option whose group and
/// name are the same as one in `before` keeps that one's id (and, unless given, its
/// availability); new ones get numbers after every number `before` used. `BadInput` for: more
/// than [`MAX_GROUPS`] groups or [`MAX_OPTIONS_PER_GROUP`] options in one, a blank or overlong
/// name, a name twice in one list, `min_selected` < 0 or above the options' count,
/// `max_selected` < max(`min_selected`, 1), a negative or too large `price_delta`.
pub fn check_option_groups(
    item: &MenuItemId,
    groups: Vec<NewOptionGroup>,
    before: &[OptionGroup],
) -> Result<Vec<OptionGroup>, DomainError> {
    if groups.len() > MAX_GROUPS {
        return bad(format!("an item has at most {MAX_GROUPS} option groups"));
    }
    let mut next = before
        .iter()
        .flat_map(|g| std::iter::once(g.id.number()).chain(g.options.iter().map(|o| o.id.number())))
        .max()
        .map_or(1, |n| n.saturating_add(1));
    let mut take = || {
        let n = next;
        next = next.saturating_add(1);
        n
    };
    let mut checked: Vec<OptionGroup> = Vec::with_capacity(groups.len());
    for group in groups {
        let name = check_name("option group name", &group.name, MAX_OPTION_NAME_CHARS)?;
        if checked.iter().any(|g| g.name == name) {
            return bad(format!("option group {name:?} appears twice"));
        }
        let old = before.iter().find(|g| g.name == name);
        if group.options.is_empty() || group.options.len() > MAX_OPTIONS_PER_GROUP {
            return bad(format!(
                "option group {name:?} needs 1 to {MAX_OPTIONS_PER_GROUP} options"
            ));
        }
        let count = group.options.len() as i64;
        if !(0..=count).contains(&group.min_selected) {
            return bad(format!(
                "minSelected of {name:?} must be 0 to its number of options ({count})"
            ));
        }
        if group.max_selected < group.min_selected.max(1) {
            return bad(format!(
                "maxSelected of {name:?} must be at least minSelected and at least 1"
            ));
        }
        let id = old.map_or_else(|| OptionGroupId::new(item, take()), |g| g.id.clone());
        let mut options: Vec<MenuOption> = Vec::with_capacity(group.options.len());
        for option in group.options {
            let option_name = check_name("option name", &option.name, MAX_OPTION_NAME_CHARS)?;
            if options.iter().any(|o| o.name == option_name) {
                return bad(format!("option {option_name:?} appears twice in {name:?}"));
            }
            if !(0..=Money::MAX_AMOUNT).contains(&option.price_delta) {
                return bad(format!(
                    "priceDelta of {option_name:?} must be 0 to {} minor units",
                    Money::MAX_AMOUNT
                ));
            }
            let kept = old.and_then(|g| g.options.iter().find(|o| o.name == option_name));
            options.push(MenuOption {
                id: kept.map_or_else(|| OptionId::new(item, take()), |o| o.id.clone()),
                translations: check_name_translations(option.translations, MAX_OPTION_NAME_CHARS)?,
                price_delta: option.price_delta,
                available: option
                    .available
                    .or(kept.map(|o| o.available))
                    .unwrap_or(true),
                name: option_name,
            });
        }
        checked.push(OptionGroup {
            id,
            translations: check_name_translations(group.translations, MAX_OPTION_NAME_CHARS)?,
            min_selected: group.min_selected,
            max_selected: group.max_selected,
            options,
            name,
        });
    }
    Ok(checked)
}

/// An option as a line chose it, kept with the order as it was then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChosenOption {
    pub option_id: OptionId,
    pub group_name: String,
    pub name: String,
    /// Minor units, per unit ordered.
    pub price_delta: i64,
}

/// Checks one line's choices against its item's groups, and returns them in the menu's order
/// with the sum of their deltas. `BadInput` for an option that is not the item's or is
/// chosen twice, or a group whose count is outside its min..max; `OptionSoldOut` for a
/// sold-out option.
pub fn choose(
    groups: &[OptionGroup],
    chosen: &[OptionId],
) -> Result<(Vec<ChosenOption>, i64), DomainError> {
    let mut wanted: BTreeSet<&OptionId> = BTreeSet::new();
    for id in chosen {
        if !wanted.insert(id) {
            return bad(format!("option {id} is chosen twice"));
        }
    }
    let mut picked = Vec::with_capacity(chosen.len());
    let mut delta: i64 = 0;
    for group in groups {
        let mut count = 0;
        for option in &group.options {
            if !wanted.remove(&option.id) {
                continue;
            }
            if !option.available {
                return Err(DomainError::OptionSoldOut(option.id.clone()));
            }
            count += 1;
            delta = delta
                .checked_add(option.price_delta)
                .ok_or_else(|| DomainError::BadInput("options cost too much".into()))?;
            picked.push(ChosenOption {
                option_id: option.id.clone(),
                group_name: group.name.clone(),
                name: option.name.clone(),
                price_delta: option.price_delta,
            });
        }
        if count < group.min_selected || count > group.max_selected {
            return bad(choice_rule(group));
        }
    }
    if let Some(stranger) = wanted.into_iter().next() {
        return bad(format!("{stranger} is not an option of this item"));
    }
    Ok((picked, delta))
}

fn choice_rule(group: &OptionGroup) -> String {
    let (min, max, name) = (group.min_selected, group.max_selected, &group.name);
    match (min, max) {
        (0, max) => format!("choose at most {max} of {name:?}"),
        (min, max) if min == max => format!("choose exactly {min} of {name:?}"),
        (min, max) => format!("choose {min} to {max} of {name:?}"),
    }
}

fn bad<T>(message: String) -> Result<T, DomainError> {
    Err(DomainError::BadInput(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option(name: &str, delta: i64) -> NewMenuOption {
        NewMenuOption {
            name: name.into(),
            price_delta: delta,
            ..NewMenuOption::default()
        }
    }

    fn ramen_groups(item: &MenuItemId) -> Vec<OptionGroup> {
        check_option_groups(
            item,
            vec![
                NewOptionGroup {
                    name: "Noodles".into(),
                    min_selected: 1,
                    max_selected: 1,
                    options: vec![option("Soft", 0), option("Firm", 0)],
                    ..NewOptionGroup::default()
                },
                NewOptionGroup {
                    name: "Toppings".into(),
                    min_selected: 0,
                    max_selected: 3,
                    options: vec![option("Egg", 120), option("Pork", 250), option("Nori", 80)],
                    ..NewOptionGroup::default()
                },
            ],
            &[],
        )
        .unwrap()
    }

    #[test]
    fn ids_name_their_item_and_parse_back() {
        let item = MenuItemId::generate();
        let groups = ramen_groups(&item);
        let ids: Vec<&str> = groups
            .iter()
            .flat_map(|g| {
                std::iter::once(g.id.as_str()).chain(g.options.iter().map(|o| o.id.as_str()))
            })
            .collect();
        assert_eq!(ids.len(), 7);
        assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 7, "unique");
        let firm = &groups[0].options[1].id;
        assert_eq!(OptionId::parse(firm.as_str()).as_ref(), Some(firm));
        assert_eq!(firm.menu_item_id(), item);
        for hostile in ["", "_1", "abc", "x_", "x_1a", "x_-1", "' OR 1=1 --_1"] {
            assert_eq!(OptionId::parse(hostile), None, "{hostile}");
        }
    }

    #[test]
    fn an_update_keeps_the_ids_of_options_that_stay() {
        let item = MenuItemId::generate();
        let before = ramen_groups(&item);
        let mut toppings = NewOptionGroup {
            name: "Toppings".into(),
            min_selected: 0,
            max_selected: 2,
            options: vec![option("Pork", 300), option("Corn", 50)],
            ..NewOptionGroup::default()
        };
        toppings.options[0].available = None;
        let after = check_option_groups(&item, vec![toppings], &before).unwrap();
        assert_eq!(after[0].id, before[1].id);
        assert_eq!(after[0].options[0].id, before[1].options[1].id, "Pork kept");
        let used: BTreeSet<&OptionId> = before
            .iter()
            .flat_map(|g| g.options.iter().map(|o| &o.id))
            .collect();
        assert!(!used.contains(&after[0].options[1].id), "Corn is new");
        assert_eq!(after[0].options[0].price_delta, 300);
    }

    #[test]
    fn groups_are_checked() {
        let item = MenuItemId::generate();
        let group = |min, max, options: Vec<NewMenuOption>| NewOptionGroup {
            name: "G".into(),
            min_selected: min,
            max_selected: max,
            options,
            ..NewOptionGroup::default()
        };
        let two = || vec![option("a", 0), option("b", 0)];
        assert!(check_option_groups(&item, vec![group(0, 1, two())], &[]).is_ok());
        assert!(check_option_groups(&item, vec![group(-1, 1, two())], &[]).is_err());
        assert!(check_option_groups(&item, vec![group(3, 3, two())], &[]).is_err());
        assert!(check_option_groups(&item, vec![group(2, 1, two())], &[]).is_err());
        assert!(check_option_groups(&item, vec![group(0, 0, two())], &[]).is_err());
        assert!(check_option_groups(&item, vec![group(0, 1, vec![])], &[]).is_err());
        let negative = vec![option("a", -1)];
        assert!(check_option_groups(&item, vec![group(0, 1, negative)], &[]).is_err());
        let twice = vec![option("a", 0), option(" a ", 0)];
        assert!(check_option_groups(&item, vec![group(0, 1, twice)], &[]).is_err());
        let same_name = vec![group(0, 1, two()), group(0, 1, two())];
        assert!(check_option_groups(&item, same_name, &[]).is_err());
        let many = vec![group(0, 1, two()); MAX_GROUPS + 1];
        assert!(check_option_groups(&item, many, &[]).is_err());
    }

    #[test]
    fn choices_follow_each_groups_rule() {
        let item = MenuItemId::generate();
        let mut groups = ramen_groups(&item);
        let id = |g: usize, o: usize| groups[g].options[o].id.clone();
        let firm_egg_pork = [id(1, 1), id(0, 1), id(1, 0)];
        let (picked, delta) = choose(&groups, &firm_egg_pork).unwrap();
        assert_eq!(delta, 370);
        let names: Vec<&str> = picked.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["Firm", "Egg", "Pork"], "in the menu's order");
        assert!(
            choose(&groups, &[id(1, 0)]).is_err(),
            "noodles are required"
        );
        assert!(
            choose(&groups, &[id(0, 0), id(0, 1)]).is_err(),
            "one noodle only"
        );
        assert!(choose(&groups, &[id(0, 0), id(0, 0)]).is_err(), "twice");
        let stranger = ramen_groups(&MenuItemId::generate())[0].options[0]
            .id
            .clone();
        assert!(matches!(
            choose(&groups, &[id(0, 0), stranger]),
            Err(DomainError::BadInput(_))
        ));
        let (soft, egg) = (id(0, 0), id(1, 0));
        groups[1].options[0].available = false;
        assert_eq!(
            choose(&groups, &[soft, egg.clone()]),
            Err(DomainError::OptionSoldOut(egg))
        );
    }
}

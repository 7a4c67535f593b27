//! The menu's mutations: items with their options, allergens and translations, archiving,
//! options sold out and back. Each is a command of the restaurant's actor.

use async_graphql::{Context, InputObject, MaybeUndefined, Object, ID};
use orderhub_actors::domain::{
    self, MenuItemId, MenuItemUpdate, NewMenuItem, NewMenuOption, NewOptionGroup, OptionId,
    RestaurantId,
};
use orderhub_actors::ports::Owned;
use orderhub_actors::restaurant::RestaurantMsg;

use super::types::{Allergen, MenuItem, TaxCategory};
use super::{command, owner, parse_id, principal, ApiError, ApiResult};

#[derive(InputObject, Clone)]
pub struct MenuItemInput {
    name: String,
    /// Minor units, >= 0.
    price: i32,
    available: Option<bool>,
    description: Option<String>,
    translations: Option<Vec<MenuItemTranslationInput>>,
    allergens: Option<Vec<Allergen>>,
    /// Defaults to FOOD.
    tax_category: Option<TaxCategory>,
    /// Defaults to the restaurant's first station.
    station_id: Option<ID>,
    /// Defaults to 300.
    prep_seconds: Option<i32>,
    option_groups: Option<Vec<OptionGroupInput>>,
}

/// Only the fields given change. optionGroups, when given, replaces the groups: an option keeps its id when its group and name stay the same.
#[derive(InputObject, Clone)]
pub struct MenuItemUpdateInput {
    name: Option<String>,
    price: Option<i32>,
    /// null clears it.
    description: MaybeUndefined<String>,
    translations: Option<Vec<MenuItemTranslationInput>>,
    allergens: Option<Vec<Allergen>>,
    tax_category: Option<TaxCategory>,
    station_id: Option<ID>,
    prep_seconds: Option<i32>,
    option_groups: Option<Vec<OptionGroupInput>>,
    /// 0-based position in the menu.
    position: Option<i32>,
}

#[derive(InputObject, Clone)]
pub struct MenuItemTranslationInput {
    locale: String,
    name: String,
    description: Option<String>,
}

#[derive(InputObject, Clone)]
pub struct OptionGroupInput {
    name: String,
    translations: Option<Vec<NameTranslationInput>>,
    min_selected: i32,
    max_selected: i32,
    options: Vec<MenuOptionInput>,
}

#[derive(InputObject, Clone)]
pub struct MenuOptionInput {
    name: String,
    translations: Option<Vec<NameTranslationInput>>,
    /// Minor units, >= 0.
    price_delta: i32,
    available: Option<bool>,
}

#[derive(InputObject, Clone)]
pub struct NameTranslationInput {
    locale: String,
    name: String,
}

/// Lists longer than any the domain accepts are refused before they are converted, so a
/// request with 10,000 translations costs no more than one with 21.
fn bounded<T>(field: &str, list: Option<Vec<T>>, max: usize) -> ApiResult<Vec<T>> {
    let list = list.unwrap_or_default();
    if list.len() > max {
        return Err(ApiError::bad_input(format!("{field}: at most {max}")));
    }
    Ok(list)
}

fn translations(
    list: Option<Vec<MenuItemTranslationInput>>,
) -> ApiResult<Vec<(String, String, Option<String>)>> {
    Ok(bounded("translations", list, domain::MAX_TRANSLATIONS)?
        .into_iter()
        .map(|t| (t.locale, t.name, t.description))
        .collect())
}

fn name_translations(list: Option<Vec<NameTranslationInput>>) -> ApiResult<Vec<(String, String)>> {
    Ok(bounded("translations", list, domain::MAX_TRANSLATIONS)?
        .into_iter()
        .map(|t| (t.locale, t.name))
        .collect())
}

fn option_groups(list: Option<Vec<OptionGroupInput>>) -> ApiResult<Vec<NewOptionGroup>> {
    bounded("optionGroups", list, domain::MAX_GROUPS)?
        .into_iter()
        .map(|group| {
            let options = bounded(
                "options",
                Some(group.options),
                domain::MAX_OPTIONS_PER_GROUP,
            )?
            .into_iter()
            .map(|option| {
                Ok(NewMenuOption {
                    name: option.name,
                    translations: name_translations(option.translations)?,
                    price_delta: i64::from(option.price_delta),
                    available: option.available,
                })
            })
            .collect::<ApiResult<Vec<_>>>()?;
            Ok(NewOptionGroup {
                name: group.name,
                translations: name_translations(group.translations)?,
                min_selected: i64::from(group.min_selected),
                max_selected: i64::from(group.max_selected),
                options,
            })
        })
        .collect()
}

fn allergens(list: Option<Vec<Allergen>>) -> Vec<domain::Allergen> {
    list.unwrap_or_default()
        .into_iter()
        .map(Into::into)
        .collect()
}

impl MenuItemInput {
    fn into_new(self) -> ApiResult<NewMenuItem> {
        Ok(NewMenuItem {
            name: self.name,
            price: i64::from(self.price),
            available: self.available,
            description: self.description,
            translations: translations(self.translations)?,
            allergens: allergens(self.allergens),
            tax_category: self.tax_category.map(Into::into),
            prep_seconds: self.prep_seconds.map(i64::from),
            option_groups: option_groups(self.option_groups)?,
        })
    }
}

impl MenuItemUpdateInput {
    fn into_update(self) -> ApiResult<MenuItemUpdate> {
        Ok(MenuItemUpdate {
            name: self.name,
            price: self.price.map(i64::from),
            description: match self.description {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(text) => Some(Some(text)),
            },
            translations: self
                .translations
                .map(|t| translations(Some(t)))
                .transpose()?,
            allergens: self.allergens.map(|a| allergens(Some(a))),
            tax_category: self.tax_category.map(Into::into),
            prep_seconds: self.prep_seconds.map(i64::from),
            option_groups: self
                .option_groups
                .map(|g| option_groups(Some(g)))
                .transpose()?,
            position: self.position.map(i64::from),
        })
    }
}

/// The restaurant of an item the caller manages: NOT_FOUND for another restaurant's,
/// FORBIDDEN for one it may see but not change. Checked here too, so that a refused caller
/// spawns no actor.
async fn managed(ctx: &Context<'_>, item: &MenuItemId) -> ApiResult<RestaurantId> {
    let restaurant = owner(ctx, Owned::MenuItem(item), "menu item").await?;
    principal(ctx)?.may_manage(&restaurant)?;
    Ok(restaurant)
}

#[derive(Default)]
pub struct MenuMutation;

#[Object]
impl MenuMutation {
    /// Admin, or a manager of that restaurant.
    async fn create_menu_item(
        &self,
        ctx: &Context<'_>,
        restaurant_id: ID,
        input: MenuItemInput,
    ) -> ApiResult<MenuItem> {
        let restaurant = parse_id("restaurantId", &restaurant_id, RestaurantId::parse)?;
        // Checked here too, so that a refused caller spawns no actor.
        principal(ctx)?.may_manage(&restaurant)?;
        let item = input.into_new()?;
        let created = command(ctx, &restaurant, |by, reply| {
            RestaurantMsg::CreateMenuItem {
                by,
                item: item.clone(),
                reply,
            }
        })
        .await?;
        Ok(MenuItem(created))
    }

    /// Manager or admin. Orders already placed keep their names and prices.
    async fn update_menu_item(
        &self,
        ctx: &Context<'_>,
        menu_item_id: ID,
        input: MenuItemUpdateInput,
        expected_version: Option<i32>,
    ) -> ApiResult<MenuItem> {
        let id = parse_id("menuItemId", &menu_item_id, MenuItemId::parse)?;
        let update = input.into_update()?;
        let restaurant = managed(ctx, &id).await?;
        let item = command(ctx, &restaurant, |by, reply| {
            RestaurantMsg::UpdateMenuItem {
                by,
                menu_item_id: id.clone(),
                update: update.clone(),
                expected_version: expected_version.map(i64::from),
                reply,
            }
        })
        .await?;
        Ok(MenuItem(item))
    }

    /// Manager or admin: takes the item off the menu; orders already placed keep it.
    async fn archive_menu_item(&self, ctx: &Context<'_>, menu_item_id: ID) -> ApiResult<MenuItem> {
        let id = parse_id("menuItemId", &menu_item_id, MenuItemId::parse)?;
        let restaurant = managed(ctx, &id).await?;
        let item = command(ctx, &restaurant, |by, reply| {
            RestaurantMsg::ArchiveMenuItem {
                by,
                menu_item_id: id.clone(),
                reply,
            }
        })
        .await?;
        Ok(MenuItem(item))
    }

    /// Staff.
    async fn set_option_availability(
        &self,
        ctx: &Context<'_>,
        option_id: ID,
        available: bool,
    ) -> ApiResult<MenuItem> {
        let option = parse_id("optionId", &option_id, OptionId::parse)?;
        let item_id = option.menu_item_id();
        let restaurant = owner(ctx, Owned::MenuItem(&item_id), "option").await?;
        let item = command(ctx, &restaurant, |by, reply| {
            RestaurantMsg::SetOptionAvailability {
                by,
                option_id: option.clone(),
                available,
                reply,
            }
        })
        .await?;
        Ok(MenuItem(item))
    }
}

//! Restaurants, their tables and menus, staff calls, and the admin mutations that set them up.

use async_graphql::{Context, InputObject, Object, ID};
use orderhub_actors::domain::{
    self, validate_restaurant, BasisPoints, MenuItemId, NewRestaurant, RestaurantId,
    RestaurantSettings, TableId, TaxRules, TaxSettingsChange,
};
use orderhub_actors::ports::{Freshness, Owned};
use orderhub_actors::restaurant::RestaurantMsg;

use super::table_links::{self, TableLink};
use super::types::{MenuItem, ServiceMode, StaffCall, Table, TaxCategory, TaxRounding, TaxRule};
use super::{command, freshness, owner, parse_id, principal, services, ApiError, ApiResult};

/// A restaurant, and how fresh the reads of its menu and tables must be: as fresh as the read
/// that found it (`atLeastSeq` holds for the whole selection).
pub struct Restaurant(pub domain::Restaurant, pub Freshness);

#[Object]
impl Restaurant {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn currency(&self) -> &str {
        self.0.currency.as_str()
    }
    /// IANA time zone of the restaurant, e.g. Asia/Tokyo. Business days, ticket numbers,
    /// reports and estimates follow it, daylight-saving changes included.
    async fn time_zone(&self) -> &str {
        self.0.time_zone.name()
    }
    /// Local time at which a business day starts (HH:MM, 24 h); orders after midnight and
    /// before it belong to the evening before.
    async fn business_day_starts_at(&self) -> String {
        self.0.day_starts_at.to_string()
    }
    /// Whether menu prices include tax.
    async fn prices_include_tax(&self) -> bool {
        self.0.tax.prices_include_tax
    }
    async fn tax_rules(&self) -> Vec<TaxRule> {
        self.0
            .tax
            .rules
            .as_slice()
            .iter()
            .map(TaxRule::from)
            .collect()
    }
    async fn tax_rounding(&self) -> TaxRounding {
        self.0.tax.rounding.into()
    }
    /// The menu, in display order. Archived items are not on it.
    async fn menu(&self, ctx: &Context<'_>) -> ApiResult<Vec<MenuItem>> {
        let menu = services(ctx)?.store.menu(&self.0.id, self.1).await?;
        Ok(menu.into_iter().map(MenuItem).collect())
    }
    /// Staff, manager and admin only.
    async fn tables(&self, ctx: &Context<'_>) -> ApiResult<Vec<Table>> {
        principal(ctx)?.may_operate(&self.0.id)?;
        let tables = services(ctx)?.store.tables(&self.0.id, self.1).await?;
        Ok(tables.into_iter().map(Table).collect())
    }
    /// Manager or admin: each table's customer link, baseUrl + "/order#token=" + a customer
    /// token for that table valid for ORDERHUB_TABLE_TOKEN_TTL, with its QR code, to print
    /// and put on the table. Each call mints new tokens; earlier ones stay valid until they
    /// expire. baseUrl: an absolute http(s) URL without fragment or query (else
    /// BAD_USER_INPUT). Not in the contract.
    async fn table_links(&self, ctx: &Context<'_>, base_url: String) -> ApiResult<Vec<TableLink>> {
        principal(ctx)?.may_manage(&self.0.id)?;
        let base = table_links::base_url(&base_url)?;
        let services = services(ctx)?;
        let tables = services.store.tables(&self.0.id, self.1).await?;
        tables
            .into_iter()
            .map(|table| services.table_links.link(&base, table))
            .collect()
    }
}

#[derive(Default)]
pub struct RestaurantQuery;

#[Object]
impl RestaurantQuery {
    async fn restaurant(
        &self,
        ctx: &Context<'_>,
        id: ID,
        at_least_seq: Option<i32>,
    ) -> ApiResult<Option<Restaurant>> {
        let id = parse_id("id", &id, RestaurantId::parse)?;
        principal(ctx)?.may_view_restaurant(&id)?;
        let fresh = freshness(ctx, &id, at_least_seq).await?;
        let restaurant = services(ctx)?.store.restaurant(&id, fresh).await?;
        Ok(restaurant.map(|r| Restaurant(r, fresh)))
    }
}

#[derive(InputObject)]
pub struct CreateRestaurantInput {
    name: String,
    /// ISO 4217; defaults to JPY.
    currency: Option<String>,
    /// IANA time zone; defaults to Asia/Tokyo for JPY, else UTC. An unknown zone is
    /// BAD_USER_INPUT.
    time_zone: Option<String>,
    /// HH:MM; defaults to 04:00.
    business_day_starts_at: Option<String>,
    /// Defaults to true.
    prices_include_tax: Option<bool>,
    /// Defaults to Japan's rules for JPY (food and soft drinks 10 % eat-in, 8 % takeout; alcohol and other 10 %) and to none (rate 0) for other currencies.
    tax_rules: Option<Vec<TaxRuleInput>>,
    /// Defaults to DOWN.
    tax_rounding: Option<TaxRounding>,
}

#[derive(InputObject, Clone)]
pub struct TaxRuleInput {
    category: TaxCategory,
    service_mode: ServiceMode,
    /// 0 to 10000.
    basis_points: i32,
}

#[derive(InputObject, Clone)]
pub struct TaxSettingsInput {
    prices_include_tax: Option<bool>,
    /// Replaces every rule when given.
    tax_rules: Option<Vec<TaxRuleInput>>,
    tax_rounding: Option<TaxRounding>,
}

/// The change the inputs ask for, the rules checked (`BAD_USER_INPUT` for a rate outside
/// 0..=10000, a (category, mode) pair twice, or more rules than pairs).
fn tax_change(
    prices_include_tax: Option<bool>,
    rules: Option<Vec<TaxRuleInput>>,
    rounding: Option<TaxRounding>,
) -> ApiResult<TaxSettingsChange> {
    let rules = match rules {
        Some(rules) if rules.len() > TaxRules::MAX_RULES => {
            return Err(ApiError::bad_input(format!(
                "taxRules: at most {}",
                TaxRules::MAX_RULES
            )))
        }
        Some(rules) => Some(TaxRules::new(
            rules
                .into_iter()
                .map(|rule| {
                    Ok(domain::TaxRule {
                        category: rule.category.into(),
                        service_mode: rule.service_mode.into(),
                        basis_points: BasisPoints::new(i64::from(rule.basis_points))?,
                    })
                })
                .collect::<Result<Vec<_>, domain::DomainError>>()?,
        )?),
        None => None,
    };
    Ok(TaxSettingsChange {
        prices_include_tax,
        rules,
        rounding: rounding.map(Into::into),
    })
}

#[derive(InputObject)]
pub struct RestaurantSettingsInput {
    name: Option<String>,
    time_zone: Option<String>,
    business_day_starts_at: Option<String>,
}

#[derive(Default)]
pub struct RestaurantMutation;

#[Object]
impl RestaurantMutation {
    /// Staff.
    async fn set_menu_item_availability(
        &self,
        ctx: &Context<'_>,
        menu_item_id: ID,
        available: bool,
    ) -> ApiResult<MenuItem> {
        let menu_item_id = parse_id("menuItemId", &menu_item_id, MenuItemId::parse)?;
        let restaurant = owner(ctx, Owned::MenuItem(&menu_item_id), "menu item").await?;
        let item = command(ctx, &restaurant, |by, reply| {
            RestaurantMsg::SetAvailability {
                by,
                menu_item_id: menu_item_id.clone(),
                available,
                reply,
            }
        })
        .await?;
        Ok(MenuItem(item))
    }

    /// Customer (its own table) or staff.
    async fn call_staff(
        &self,
        ctx: &Context<'_>,
        table_id: ID,
        message: Option<String>,
    ) -> ApiResult<StaffCall> {
        let table_id = parse_id("tableId", &table_id, TableId::parse)?;
        let restaurant = owner(ctx, Owned::Table(&table_id), "table").await?;
        let call = command(ctx, &restaurant, |by, reply| RestaurantMsg::CallStaff {
            by,
            table_id: table_id.clone(),
            message: message.clone(),
            reply,
        })
        .await?;
        Ok(StaffCall(call))
    }

    /// Admin.
    async fn create_restaurant(
        &self,
        ctx: &Context<'_>,
        input: CreateRestaurantInput,
    ) -> ApiResult<Restaurant> {
        let by = principal(ctx)?;
        by.may_administer()?;
        let restaurant = validate_restaurant(NewRestaurant {
            name: input.name,
            currency: input.currency,
            time_zone: input.time_zone,
            business_day_starts_at: input.business_day_starts_at,
            tax: tax_change(
                input.prices_include_tax,
                input.tax_rules,
                input.tax_rounding,
            )?,
        })?;
        let services = services(ctx)?;
        // No actor yet: a new restaurant has no commands to serialize with.
        services.store.create_restaurant(&restaurant).await?;
        services.reads.client_wrote(&by.subject);
        // Its creator reads its own write: from the writer.
        Ok(Restaurant(restaurant, Freshness::Current))
    }

    /// Manager or admin: only the fields given change; the business day in progress keeps its
    /// ticket numbers.
    async fn update_restaurant(
        &self,
        ctx: &Context<'_>,
        restaurant_id: ID,
        input: RestaurantSettingsInput,
    ) -> ApiResult<Restaurant> {
        let restaurant = parse_id("restaurantId", &restaurant_id, RestaurantId::parse)?;
        // Checked here too, so that a refused caller spawns no actor.
        principal(ctx)?.may_manage(&restaurant)?;
        let updated = command(ctx, &restaurant, |by, reply| {
            RestaurantMsg::UpdateRestaurant {
                by,
                settings: RestaurantSettings {
                    name: input.name.clone(),
                    time_zone: input.time_zone.clone(),
                    business_day_starts_at: input.business_day_starts_at.clone(),
                },
                reply,
            }
        })
        .await?;
        Ok(Restaurant(updated, Freshness::Current))
    }

    /// Admin, or a manager of that restaurant.
    async fn create_table(
        &self,
        ctx: &Context<'_>,
        restaurant_id: ID,
        name: String,
    ) -> ApiResult<Table> {
        let restaurant = parse_id("restaurantId", &restaurant_id, RestaurantId::parse)?;
        // Checked here too, so that a refused caller spawns no actor.
        principal(ctx)?.may_manage(&restaurant)?;
        let table = command(ctx, &restaurant, |by, reply| RestaurantMsg::CreateTable {
            by,
            name: name.clone(),
            reply,
        })
        .await?;
        Ok(Table(table))
    }

    /// Manager or admin.
    async fn set_tax_settings(
        &self,
        ctx: &Context<'_>,
        restaurant_id: ID,
        input: TaxSettingsInput,
    ) -> ApiResult<Restaurant> {
        let restaurant = parse_id("restaurantId", &restaurant_id, RestaurantId::parse)?;
        principal(ctx)?.may_manage(&restaurant)?;
        let change = tax_change(
            input.prices_include_tax,
            input.tax_rules,
            input.tax_rounding,
        )?;
        let updated = command(ctx, &restaurant, |by, reply| {
            RestaurantMsg::SetTaxSettings {
                by,
                change: change.clone(),
                reply,
            }
        })
        .await?;
        Ok(Restaurant(updated, Freshness::Current))
    }
}

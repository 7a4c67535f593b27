//! The demo restaurant created on first start, so that a newcomer can order right away.

use orderhub_actors::domain::{
    validate_restaurant, MenuItem, NewMenuItem, NewRestaurant, Principal, Restaurant, Table,
};
use orderhub_actors::restaurant::{RestaurantMsg, RestaurantRegistry};
use orderhub_actors::CommandError;

const TABLES: [&str; 6] = [
    "Table 1",
    "Table 2",
    "Table 3",
    "Table 4",
    "Counter 1",
    "Counter 2",
];

/// Name, price in yen, available.
const MENU: [(&str, i64, bool); 8] = [
    ("Shoyu ramen", 950, true),
    ("Miso ramen", 1_000, true),
    ("Gyoza (6)", 450, true),
    ("Karaage", 600, true),
    ("Edamame", 350, true),
    ("Chashu rice bowl", 500, true),
    ("Matcha ice cream", 400, true),
    ("Seasonal special", 1_200, false),
];

pub struct Demo {
    pub restaurant: Restaurant,
    pub tables: Vec<Table>,
    pub menu: Vec<MenuItem>,
}

/// Creates the demo restaurant through its actor, like any admin would.
pub async fn seed(registry: &RestaurantRegistry) -> Result<Demo, CommandError> {
    let admin = Principal::admin("demo-seed");
    let restaurant = validate_restaurant(NewRestaurant {
        name: "Demo Ramen Bar".into(),
        currency: Some("JPY".into()),
        // A ramen bar in Tokyo: its business day turns at 04:00 there.
        time_zone: Some("Asia/Tokyo".into()),
        business_day_starts_at: Some("04:00".into()),
    })?;
    registry.deps().store.create_restaurant(&restaurant).await?;
    let mut tables = Vec::new();
    for name in TABLES {
        let table = registry
            .call(&restaurant.id, |reply| RestaurantMsg::CreateTable {
                by: admin.clone(),
                name: name.into(),
                reply,
            })
            .await?;
        tables.push(table);
    }
    let mut menu = Vec::new();
    for (name, price, available) in MENU {
        let item = registry
            .call(&restaurant.id, |reply| RestaurantMsg::CreateMenuItem {
                by: admin.clone(),
                item: NewMenuItem {
                    name: name.into(),
                    price,
                    available: Some(available),
                },
                reply,
            })
            .await?;
        menu.push(item);
    }
    Ok(Demo {
        restaurant,
        tables,
        menu,
    })
}

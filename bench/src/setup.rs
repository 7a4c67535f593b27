//! Fixtures made through the public GraphQL API with an admin token, and the tokens each
//! simulated client signs with the server's secret.

use anyhow::{anyhow, Context};
use orderhub::auth::Tokens;
use orderhub_actors::domain::{RestaurantId, Role, TableId};
use serde_json::{json, Value};
use std::time::Duration;

use crate::client::{Target, PLACE_ORDER};
use crate::frame;

const TOKEN_TTL: Duration = Duration::from_secs(6 * 3600);

/// A restaurant made for one run: fresh, so its events after `seq` are the run's.
#[derive(Debug, Clone)]
pub struct Restaurant {
    pub id: String,
    pub table: String,
    pub menu_item: String,
    /// The restaurant's newest seq once set up (orderhub's menu item is an event of its own):
    /// displays that replay subscribe after it.
    pub seq: i64,
    /// Places orders at the table.
    pub customer: String,
}

/// Signs tokens for the server's secret.
#[derive(Clone)]
pub struct Signer {
    tokens: Tokens,
}

impl Signer {
    pub fn new(secret: &str) -> anyhow::Result<Self> {
        Ok(Self {
            tokens: Tokens::new(secret.as_bytes())?,
        })
    }

    pub fn admin(&self) -> String {
        self.tokens
            .issue("bench-admin", Role::Admin, None, None, TOKEN_TTL)
    }

    /// A kitchen display's token: each display has its own (rate limits are per token).
    pub fn staff(&self, restaurant: &str, display: usize) -> anyhow::Result<String> {
        let restaurant =
            RestaurantId::parse(restaurant).ok_or_else(|| anyhow!("bad restaurant id"))?;
        Ok(self.tokens.issue(
            &format!("bench-display-{display}"),
            Role::Staff,
            Some(&restaurant),
            None,
            TOKEN_TTL,
        ))
    }

    fn customer(&self, restaurant: &str, table: &str) -> anyhow::Result<String> {
        let restaurant =
            RestaurantId::parse(restaurant).ok_or_else(|| anyhow!("bad restaurant id"))?;
        let table = TableId::parse(table).ok_or_else(|| anyhow!("bad table id"))?;
        Ok(self.tokens.issue(
            "bench-table",
            Role::Customer,
            Some(&restaurant),
            Some(&table),
            TOKEN_TTL,
        ))
    }
}

fn id_at(data: &Value, field: &str) -> anyhow::Result<String> {
    data[field]["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("{field} returned no id: {data}"))
}

/// Creates `count` restaurants, each with one table and one menu item, a few at a time.
pub async fn restaurants(
    target: &Target,
    signer: &Signer,
    count: usize,
) -> anyhow::Result<Vec<Restaurant>> {
    let admin = signer.admin();
    let mut made = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(8) {
        let batch = chunk.iter().map(|&i| restaurant(target, signer, &admin, i));
        for result in futures_util::future::join_all(batch).await {
            made.push(result?);
        }
    }
    Ok(made)
}

async fn restaurant(
    target: &Target,
    signer: &Signer,
    admin: &str,
    index: usize,
) -> anyhow::Result<Restaurant> {
    let created = target
        .gql(
            admin,
            "mutation($n: String!) { createRestaurant(input: {name: $n}) { id } }",
            json!({"n": format!("Bench Kitchen {index}")}),
        )
        .await
        .context("createRestaurant")?;
    let id = id_at(&created, "createRestaurant")?;
    let table = target
        .gql(
            admin,
            "mutation($r: ID!, $n: String!) { createTable(restaurantId: $r, name: $n) { id } }",
            json!({"r": id, "n": "T1"}),
        )
        .await
        .context("createTable")?;
    let table = id_at(&table, "createTable")?;
    let item = target
        .gql(
            admin,
            "mutation($r: ID!, $i: MenuItemInput!) { createMenuItem(restaurantId: $r, input: $i) { id } }",
            json!({"r": id, "i": {"name": "Ramen", "price": 900, "available": true}}),
        )
        .await
        .context("createMenuItem")?;
    let menu_item = id_at(&item, "createMenuItem")?;
    let page = target
        .gql(
            admin,
            "query($r: ID!) { orders(restaurantId: $r, first: 1) { seq } }",
            json!({"r": id}),
        )
        .await
        .context("orders")?;
    let seq = page["orders"]["seq"]
        .as_i64()
        .ok_or_else(|| anyhow!("no seq in {page}"))?;
    let customer = signer.customer(&id, &table)?;
    Ok(Restaurant {
        id,
        table,
        menu_item,
        seq,
        customer,
    })
}

/// The variables of one `placeOrder`: one ramen, the send time in the note.
pub fn order_variables(restaurant: &Restaurant, key: &str, sent_at_nanos: u64) -> Value {
    json!({"i": {
        "restaurantId": restaurant.id,
        "tableId": restaurant.table,
        "items": [{"menuItemId": restaurant.menu_item, "quantity": 1}],
        "note": frame::note_for(sent_at_nanos),
        "idempotencyKey": key,
    }})
}

/// Places one order now; returns when the server answered.
pub async fn place_order(
    target: &Target,
    restaurant: &Restaurant,
    key: &str,
) -> anyhow::Result<()> {
    let variables = order_variables(restaurant, key, crate::client::unix_nanos());
    target
        .gql(&restaurant.customer, PLACE_ORDER, variables)
        .await
        .map(drop)
}

/// A key unique to this run, so that reruns against the same database never collide.
pub fn run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

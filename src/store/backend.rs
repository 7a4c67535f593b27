//! The sqlx store, written once as a macro and instantiated per backend: sqlx's `Any` driver
//! lacks the types we need, and code generic over `sqlx::Database` drowns in bounds, while the
//! Rust around the SQL is the same for PostgreSQL, SQLite and MySQL. The SQL is shared too
//! (`sql`), except for the few statements each backend spells its own way: the macro takes the
//! backend's module of those (`dialect`, whose header lists them and why).
//!
//! A command transaction holds its pooled connection itself, begun and ended through sqlx's
//! transaction manager, so that the connection that committed is still at hand afterwards:
//! MariaDB tells a session's last GTID only to that session (`@@last_gtid`).

use orderhub_actors::StoreError;

/// Connection trouble is UNAVAILABLE (retry later); a unique-key violation is a conflict;
/// the rest is internal. The text goes to logs only.
pub(super) fn store_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(error.to_string())
        }
        sqlx::Error::Database(db) if is_connection_state(db.code().as_deref()) => {
            StoreError::Unavailable(error.to_string())
        }
        sqlx::Error::Database(db)
            if db
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .is_some_and(|e| is_mysql_unavailable(e.number())) =>
        {
            StoreError::Unavailable(error.to_string())
        }
        _ => StoreError::Internal(error.to_string()),
    }
}

/// MySQL/MariaDB error numbers that mean the server is away or going: the client's 2002
/// (socket), 2003 (TCP), 2006 (gone away) and 2013 (lost during a query) when a server relays
/// them, 1040 (too many connections), 1053 (shutdown in progress), 1927 (MariaDB: connection
/// killed, as at shutdown) and 4031 (MySQL: disconnected for inactivity). Their SQLSTATE
/// class 08 is caught with PostgreSQL's above.
fn is_mysql_unavailable(number: u16) -> bool {
    matches!(
        number,
        1040 | 1053 | 1927 | 2002 | 2003 | 2006 | 2013 | 4031
    )
}

/// PostgreSQL class 08 (connection exception) and 57P0x (shutdown, crash recovery);
/// SQLite 5/6 (busy, locked).
fn is_connection_state(code: Option<&str>) -> bool {
    code.is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c == "5" || c == "6")
}

/// A replica for reads that tolerate staleness, and what decides when they may use it.
pub struct Replica<DB: sqlx::Database> {
    pub pool: sqlx::Pool<DB>,
    pub routing: std::sync::Arc<super::routing::ReadRouting>,
    pub positions: Positions,
}

impl<DB: sqlx::Database> Clone for Replica<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            routing: self.routing.clone(),
            positions: self.positions.clone(),
        }
    }
}

/// How the writer tells where a commit stands, as the number `ReadRouting` compares.
#[derive(Debug, Clone)]
pub enum Positions {
    /// PostgreSQL: the WAL insert position after the commit.
    Wal,
    /// MySQL/MariaDB: the commit's GTID, read on its own connection.
    Gtid(super::gtid::Primary),
}

impl Positions {
    pub(super) fn query(&self) -> &'static str {
        match self {
            Positions::Wal => super::dialect::postgres::WRITE_POSITION,
            Positions::Gtid(primary) => primary.last_gtid_query(),
        }
    }

    pub(super) fn parse(&self, text: &str) -> Option<u64> {
        match self {
            Positions::Wal => super::routing::parse_lsn(text),
            Positions::Gtid(primary) => primary.written(text),
        }
    }
}

/// A pooled connection inside a transaction, begun and ended through sqlx's transaction
/// manager, and rolled back when dropped uncommitted, as sqlx's own `Transaction` is. Unlike
/// that, it keeps the connection after the commit, for what only that session can tell.
pub(super) struct TxConnection<DB: sqlx::Database> {
    pub conn: sqlx::pool::PoolConnection<DB>,
    open: bool,
}

impl<DB: sqlx::Database> TxConnection<DB> {
    /// `statement`: the dialect's own `BEGIN …`, if it has one.
    pub async fn begin(
        mut conn: sqlx::pool::PoolConnection<DB>,
        statement: Option<&'static str>,
    ) -> Result<Self, StoreError> {
        <DB::TransactionManager as sqlx::TransactionManager>::begin(
            &mut conn,
            statement.map(std::borrow::Cow::Borrowed),
        )
        .await
        .map_err(store_error)?;
        Ok(Self { conn, open: true })
    }

    pub async fn commit(&mut self) -> Result<(), StoreError> {
        <DB::TransactionManager as sqlx::TransactionManager>::commit(&mut self.conn)
            .await
            .map_err(store_error)?;
        self.open = false;
        Ok(())
    }
}

impl<DB: sqlx::Database> Drop for TxConnection<DB> {
    fn drop(&mut self) {
        if self.open {
            // Sent before the connection's next use; the pool's check on return sends it.
            <DB::TransactionManager as sqlx::TransactionManager>::start_rollback(&mut self.conn);
        }
    }
}

/// A value of a staged write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Value {
    Text(String),
    MaybeText(Option<String>),
    Int(i64),
    Bool(bool),
}

/// A write a command transaction sends at commit: a shared statement (`sql`, numbered `$1…`
/// in order, each once) and its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Staged {
    pub statement: std::borrow::Cow<'static, str>,
    pub values: Vec<Value>,
}

/// The statements that send `writes` in the dialect's `batch` form, each with its values:
/// one for `With` and `Script`, one per write for `OneByOne`. Still `$n`-numbered.
pub(super) fn batches(
    batch: super::dialect::Batch,
    writes: &[Staged],
) -> Vec<(std::borrow::Cow<'static, str>, Vec<&Value>)> {
    use super::dialect::Batch;
    use super::sql::shifted;
    if writes.len() < 2 || batch == Batch::OneByOne {
        return writes
            .iter()
            .map(|w| (w.statement.clone(), w.values.iter().collect()))
            .collect();
    }
    let mut text = String::new();
    let mut offset = 0;
    let last = writes.len() - 1;
    for (i, write) in writes.iter().enumerate() {
        let statement = shifted(&write.statement, offset);
        offset += write.values.len();
        match batch {
            Batch::With if i == 0 => text = format!("WITH w0 AS ({statement})"),
            Batch::With if i < last => text.push_str(&format!(", w{i} AS ({statement})")),
            Batch::With => text.push_str(&format!(" {statement}")),
            Batch::Script | Batch::OneByOne if i == 0 => text = statement,
            Batch::Script | Batch::OneByOne => text.push_str(&format!("; {statement}")),
        }
    }
    let values = writes.iter().flat_map(|w| w.values.iter()).collect();
    vec![(text.into(), values)]
}

/// A list column's JSON text.
pub(super) fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Internal(e.to_string()))
}

/// A JSON text column read back.
pub(super) fn from_json<T: serde::de::DeserializeOwned>(
    what: &str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(what, &e.to_string()))
}

/// An enum column read back by its name.
pub(super) fn parsed<T>(
    what: &str,
    text: String,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, StoreError> {
    parse(&text).ok_or_else(|| corrupt(what, &text))
}

pub(super) fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Internal(format!("stored {what} is invalid: {value:?}"))
}

macro_rules! sql_store {
    ($store:ident, $tx:ident, $db:ty, $dialect:ident) => {
        use async_trait::async_trait;
        use orderhub_actors::domain::{
            BasisPoints, BusinessDay, BusinessDayStart, Currency, Event, EventKind, MenuItem,
            MenuItemId, Money, Order, OrderId, OrderItem, OrderItemId, OrderStatus, Restaurant,
            RestaurantId, ServiceMode, StaffCall, Table, TableId, TaxCategory, TaxRounding,
            TaxSettings, TimeZone, Timestamp,
        };
        use orderhub_actors::ports::{
            Counters, Found, Freshness, History, Lookup, OrderPage, OrderQuery, Owned,
            RestaurantTx, Store,
        };
        use orderhub_actors::StoreError;
        use sqlx::Row;
        use std::collections::HashMap;

        use crate::store::backend::{
            batches, corrupt, from_json, json, parsed, store_error, Positions, Replica, Staged,
            TxConnection, Value,
        };
        use crate::store::dialect::$dialect as dialect;
        use crate::store::routing::ReadRouting;
        use crate::store::sql;

        type DbRow = <$db as sqlx::Database>::Row;
        type DbConnection = <$db as sqlx::Database>::Connection;

        fn get<'r, T>(row: &'r DbRow, column: &str) -> Result<T, StoreError>
        where
            T: sqlx::Decode<'r, $db> + sqlx::Type<$db>,
        {
            if dialect::DECODE_UNCHECKED {
                row.try_get_unchecked(column).map_err(store_error)
            } else {
                row.try_get(column).map_err(store_error)
            }
        }

        fn restaurant_from(row: &DbRow) -> Result<Restaurant, StoreError> {
            let zone: String = get(row, "time_zone")?;
            let start: i64 = get(row, "business_day_start_minutes")?;
            Ok(Restaurant {
                id: RestaurantId::from_trusted(get(row, "id")?),
                name: get(row, "name")?,
                currency: Currency::from_trusted(get(row, "currency")?),
                time_zone: TimeZone::parse(&zone).map_err(|_| corrupt("time zone", &zone))?,
                day_starts_at: BusinessDayStart::from_minutes(start)
                    .ok_or_else(|| corrupt("business day start", &start.to_string()))?,
                tax: TaxSettings {
                    prices_include_tax: get(row, "prices_include_tax")?,
                    rules: from_json("tax rules", &get::<String>(row, "tax_rules")?)?,
                    rounding: parsed("tax rounding", get(row, "tax_rounding")?, TaxRounding::parse)?,
                },
            })
        }

        fn table_from(row: &DbRow) -> Result<Table, StoreError> {
            Ok(Table {
                id: TableId::from_trusted(get(row, "id")?),
                restaurant_id: RestaurantId::from_trusted(get(row, "restaurant_id")?),
                name: get(row, "name")?,
            })
        }

        /// `sql::menu_item_columns`, its price in the row's `currency`.
        fn menu_item_from(row: &DbRow) -> Result<MenuItem, StoreError> {
            Ok(MenuItem {
                id: MenuItemId::from_trusted(get(row, "m_id")?),
                restaurant_id: RestaurantId::from_trusted(get(row, "m_restaurant_id")?),
                name: get(row, "m_name")?,
                price: Money::new(
                    get(row, "m_price")?,
                    Currency::from_trusted(get(row, "currency")?),
                ),
                available: get(row, "m_available")?,
                description: get(row, "m_description")?,
                translations: from_json("translations", &get::<String>(row, "m_translations")?)?,
                allergens: from_json("allergens", &get::<String>(row, "m_allergens")?)?,
                tax_category: parsed("tax category", get(row, "m_tax_category")?, TaxCategory::parse)?,
                prep_seconds: get(row, "m_prep_seconds")?,
                option_groups: from_json("option groups", &get::<String>(row, "m_option_groups")?)?,
                version: get(row, "m_version")?,
                archived: get(row, "m_archived")?,
                position: get(row, "m_menu_position")?,
            })
        }

        /// `sql::LINE_COLUMNS`: the line and its order's id; prices in `currency`.
        fn line_from(row: &DbRow, currency: &Currency) -> Result<(String, OrderItem), StoreError> {
            let order_id: String = get(row, "oi_order_id")?;
            let line: i64 = get(row, "oi_line")?;
            let rate: i64 = get(row, "oi_tax_basis_points")?;
            let item = OrderItem {
                id: OrderItemId::new(&OrderId::from_trusted(order_id.clone()), line),
                menu_item_id: MenuItemId::from_trusted(get(row, "oi_menu_item_id")?),
                name: get(row, "oi_name")?,
                unit_price: Money::new(get(row, "oi_unit_price")?, currency.clone()),
                quantity: get(row, "oi_quantity")?,
                note: get(row, "oi_note")?,
                options: from_json("line options", &get::<String>(row, "oi_options")?)?,
                tax_basis_points: BasisPoints::new(rate)
                    .map_err(|_| corrupt("tax rate", &rate.to_string()))?,
            };
            Ok((order_id, item))
        }

        /// `sql::ORDER_COLUMNS`: an order without its items (`with_items` adds them).
        fn order_from(row: &DbRow) -> Result<Order, StoreError> {
            let status: String = get(row, "o_status")?;
            Ok(Order {
                id: OrderId::from_trusted(get(row, "o_id")?),
                restaurant_id: RestaurantId::from_trusted(get(row, "o_restaurant_id")?),
                table_id: TableId::from_trusted(get(row, "o_table_id")?),
                number: get(row, "o_number")?,
                status: OrderStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
                items: Vec::new(),
                total: Money::new(
                    get(row, "o_total")?,
                    Currency::from_trusted(get(row, "o_currency")?),
                ),
                note: get(row, "o_note")?,
                cancel_reason: get(row, "o_cancel_reason")?,
                placed_at: Timestamp(get(row, "o_placed_at")?),
                updated_at: Timestamp(get(row, "o_updated_at")?),
                version: get(row, "o_version")?,
                service_mode: parsed("service mode", get(row, "o_service_mode")?, ServiceMode::parse)?,
                taxes: from_json("taxes", &get::<String>(row, "o_taxes")?)?,
                prices_include_tax: get(row, "o_prices_include_tax")?,
                tax_rounding: parsed("tax rounding", get(row, "o_tax_rounding")?, TaxRounding::parse)?,
            })
        }

        /// What `sql::lock_and_look_up`'s rows hold besides the restaurant: one row per
        /// (menu item × order line) found, so both are gathered by their keys.
        fn found_from(
            rows: &[DbRow],
            lookup: &Lookup<'_>,
            restaurant: &Restaurant,
        ) -> Result<Found, StoreError> {
            let mut found = Found::default();
            let mut items = std::collections::BTreeMap::new();
            let mut lines = std::collections::BTreeMap::new();
            for row in rows {
                if lookup.idempotency_key.is_some() && found.by_key.is_none() {
                    if let Some(id) = get::<Option<String>>(row, "k_id")? {
                        found.by_key = Some((get(row, "k_fingerprint")?, OrderId::from_trusted(id)));
                    }
                }
                if lookup.table.is_some() && found.table.is_none() {
                    if let Some(id) = get::<Option<String>>(row, "t_id")? {
                        found.table = Some(Table {
                            id: TableId::from_trusted(id),
                            restaurant_id: restaurant.id.clone(),
                            name: get(row, "t_name")?,
                        });
                    }
                }
                if lookup.whole_menu || !lookup.menu_items.is_empty() {
                    if let Some(id) = get::<Option<String>>(row, "m_id")? {
                        if !items.contains_key(&id) {
                            items.insert(id, menu_item_from(row)?);
                        }
                    }
                }
                if lookup.order.is_some() && get::<Option<String>>(row, "o_id")?.is_some() {
                    if found.order.is_none() {
                        found.order = Some(order_from(row)?);
                    }
                    if let (Some(line), Some(order)) =
                        (get::<Option<i64>>(row, "oi_line")?, &found.order)
                    {
                        if !lines.contains_key(&line) {
                            lines.insert(line, line_from(row, &order.total.currency)?.1);
                        }
                    }
                }
            }
            found.menu_items = items.into_values().collect();
            if let Some(order) = &mut found.order {
                order.items = lines.into_values().collect();
            }
            Ok(found)
        }

        async fn lock_and_look_up(
            tx: &mut TxConnection<$db>,
            statement: &str,
            restaurant: &RestaurantId,
            lookup: &Lookup<'_>,
        ) -> Result<Vec<DbRow>, StoreError> {
            let mut query = sqlx::query(statement);
            if let Some(key) = lookup.idempotency_key {
                query = query.bind(key);
            }
            if let Some(table) = lookup.table {
                query = query.bind(table.as_str());
            }
            if !lookup.whole_menu {
                for item in lookup.menu_items {
                    query = query.bind(item.as_str());
                }
            }
            if let Some(order) = lookup.order {
                query = query.bind(order.as_str());
            }
            query
                .bind(restaurant.as_str())
                .fetch_all(&mut *tx.conn)
                .await
                .map_err(store_error)
        }

        /// A menu item's columns from `name` to `menu_position`, in the order
        /// `INSERT_MENU_ITEM` and `UPDATE_MENU_ITEM` take them.
        fn menu_item_values(item: &MenuItem) -> Result<Vec<Value>, StoreError> {
            Ok(vec![
                Value::Text(item.name.clone()),
                Value::Int(item.price.amount),
                Value::Bool(item.available),
                Value::MaybeText(item.description.clone()),
                Value::Text(json(&item.translations)?),
                Value::Text(json(&item.allergens)?),
                Value::Text(item.tax_category.as_str().to_owned()),
                Value::Int(item.prep_seconds),
                Value::Text(json(&item.option_groups)?),
                Value::Int(item.version),
                Value::Bool(item.archived),
                Value::Int(item.position),
            ])
        }

        /// Binds a staged write's value.
        fn bind<'q>(
            query: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>,
            value: &'q Value,
        ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>> {
            match value {
                Value::Text(text) => query.bind(text.as_str()),
                Value::MaybeText(text) => query.bind(text.as_deref()),
                Value::Int(int) => query.bind(*int),
                Value::Bool(bool) => query.bind(*bool),
            }
        }

        fn event_from(restaurant_id: &RestaurantId, row: &DbRow) -> Result<Event, StoreError> {
            let payload: String = get(row, "payload")?;
            let kind: EventKind = from_json::<EventKind>("event payload", &payload)?.with_line_ids();
            Ok(Event {
                restaurant_id: restaurant_id.clone(),
                seq: get(row, "seq")?,
                at: Timestamp(get(row, "at")?),
                kind,
            })
        }

        async fn with_items(
            conn: &mut DbConnection,
            mut orders: Vec<Order>,
        ) -> Result<Vec<Order>, StoreError> {
            if orders.is_empty() {
                return Ok(orders);
            }
            let statement = dialect::built(sql::select_items(orders.len()));
            let mut query = sqlx::query(&statement);
            for order in &orders {
                query = query.bind(order.id.as_str());
            }
            let rows = query.fetch_all(&mut *conn).await.map_err(store_error)?;
            let currencies: HashMap<String, Currency> = orders
                .iter()
                .map(|o| (o.id.as_str().to_owned(), o.total.currency.clone()))
                .collect();
            let mut items: HashMap<String, Vec<OrderItem>> = HashMap::new();
            for row in &rows {
                let order_id: String = get(row, "oi_order_id")?;
                let currency = currencies
                    .get(&order_id)
                    .ok_or_else(|| corrupt("order item", &order_id))?;
                let (order_id, item) = line_from(row, currency)?;
                items.entry(order_id).or_default().push(item);
            }
            for order in &mut orders {
                order.items = items.remove(order.id.as_str()).unwrap_or_default();
            }
            Ok(orders)
        }

        /// After a commit, on the connection that made it: where it stands, for
        /// read-your-writes.
        async fn record_write_position(
            conn: &mut DbConnection,
            positions: &Positions,
            routing: &ReadRouting,
        ) {
            let text = sqlx::query_scalar::<_, Option<String>>(positions.query())
                .fetch_one(conn)
                .await;
            match text {
                Ok(Some(text)) => match positions.parse(&text) {
                    Some(position) => routing.committed_up_to(position),
                    // MariaDB: a session that has not written yet has no last GTID.
                    None if text.is_empty() => {}
                    None => tracing::warn!(text, "unparsable commit position"),
                },
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "cannot read the commit position"),
            }
        }

        async fn order_by_id(
            conn: &mut DbConnection,
            id: &OrderId,
            restaurant: Option<&RestaurantId>,
        ) -> Result<Option<Order>, StoreError> {
            let statement = dialect::built(sql::select_order(restaurant.is_some()));
            let mut query = sqlx::query(&statement).bind(id.as_str());
            if let Some(restaurant) = restaurant {
                query = query.bind(restaurant.as_str());
            }
            let Some(row) = query
                .fetch_optional(&mut *conn)
                .await
                .map_err(store_error)?
            else {
                return Ok(None);
            };
            let order = order_from(&row)?;
            Ok(with_items(conn, vec![order]).await?.pop())
        }

        pub struct $store {
            pool: sqlx::Pool<$db>,
            /// Where command transactions run: `pool` unless told otherwise.
            commands: sqlx::Pool<$db>,
            replica: Option<Replica<$db>>,
        }

        impl $store {
            pub fn new(pool: sqlx::Pool<$db>) -> Self {
                Self { commands: pool.clone(), pool, replica: None }
            }

            /// Command transactions run on `commands`, a pool of the same database.
            #[allow(dead_code)] // SQLite's only
            pub fn with_command_pool(self, commands: sqlx::Pool<$db>) -> Self {
                Self { commands, ..self }
            }

            pub fn with_replica(self, replica: Replica<$db>) -> Self {
                Self { replica: Some(replica), ..self }
            }

            /// The pool for a read that may be a little stale; see `routing`.
            fn read_pool(&self, freshness: Freshness) -> &sqlx::Pool<$db> {
                match &self.replica {
                    Some(replica)
                        if freshness == Freshness::Recent && replica.routing.replica_ok() =>
                    {
                        metrics::counter!(crate::metrics::READS, "pool" => "replica").increment(1);
                        &replica.pool
                    }
                    _ => {
                        metrics::counter!(crate::metrics::READS, "pool" => "writer").increment(1);
                        &self.pool
                    }
                }
            }

            /// After a write outside a command transaction, on the connection that made it.
            async fn record_write_position(&self, conn: &mut DbConnection) {
                if let Some(replica) = &self.replica {
                    record_write_position(conn, &replica.positions, &replica.routing).await;
                }
            }

            async fn read_connection(
                &self,
                freshness: Freshness,
            ) -> Result<sqlx::pool::PoolConnection<$db>, StoreError> {
                self.read_pool(freshness).acquire().await.map_err(store_error)
            }
        }

        #[async_trait]
        impl Store for $store {
            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "begin"))]
            async fn begin(
                &self,
                restaurant: &RestaurantId,
                lookup: Lookup<'_>,
            ) -> Result<Option<Box<dyn RestaurantTx>>, StoreError> {
                let _timer = crate::metrics::QueryTimer::start("begin");
                let conn = self.commands.acquire().await.map_err(store_error)?;
                let mut tx = TxConnection::begin(conn, dialect::BEGIN).await?;
                let shape = sql::LookupShape {
                    key: lookup.idempotency_key.is_some(),
                    table: lookup.table.is_some(),
                    menu_items: lookup.menu_items.len(),
                    whole_menu: lookup.whole_menu,
                    order: lookup.order.is_some(),
                    snapshot_seq: dialect::SNAPSHOT_SEQ,
                };
                let statement =
                    dialect::built(sql::lock_and_look_up(shape, dialect::key_is, dialect::LOCK));
                let mut rows = lock_and_look_up(&mut tx, &statement, restaurant, &lookup).await?;
                let waited_out = match rows.first() {
                    Some(row) if dialect::SNAPSHOT_SEQ => {
                        get::<i64>(row, "snapshot_seq")? != get::<i64>(row, "last_seq")?
                    }
                    _ => false,
                };
                if waited_out {
                    // Another node's command committed while this one waited: read again,
                    // now under the lock (see `SNAPSHOT_SEQ`).
                    rows = lock_and_look_up(&mut tx, &statement, restaurant, &lookup).await?;
                }
                let Some(row) = rows.first() else { return Ok(None) };
                let counters = Counters {
                    last_seq: get(row, "last_seq")?,
                    ticket_day: BusinessDay(get(row, "ticket_day")?),
                    last_ticket: get(row, "last_ticket")?,
                };
                let restaurant = restaurant_from(row)?;
                let found = found_from(&rows, &lookup, &restaurant)?;
                let after_commit =
                    self.replica.as_ref().map(|r| (r.positions.clone(), r.routing.clone()));
                Ok(Some(Box::new($tx {
                    tx,
                    written: counters.clone(),
                    counters,
                    restaurant,
                    restaurant_changed: false,
                    found,
                    writes: Vec::new(),
                    after_commit,
                })))
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "create_restaurant"))]
            async fn create_restaurant(&self, restaurant: &Restaurant) -> Result<(), StoreError> {
                let _timer = crate::metrics::QueryTimer::start("create_restaurant");
                let mut conn = self.pool.acquire().await.map_err(store_error)?;
                sqlx::query(dialect::sql(sql::INSERT_RESTAURANT))
                    .bind(restaurant.id.as_str())
                    .bind(&restaurant.name)
                    .bind(restaurant.currency.as_str())
                    .bind(restaurant.time_zone.name())
                    .bind(restaurant.day_starts_at.minutes())
                    .bind(restaurant.tax.prices_include_tax)
                    .bind(json(&restaurant.tax.rules)?)
                    .bind(restaurant.tax.rounding.as_str())
                    .bind(Timestamp::now().millis())
                    .execute(&mut *conn)
                    .await
                    .map_err(store_error)?;
                self.record_write_position(&mut conn).await;
                Ok(())
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "count_restaurants"))]
            async fn count_restaurants(&self) -> Result<i64, StoreError> {
                let _timer = crate::metrics::QueryTimer::start("count_restaurants");
                let row = sqlx::query(dialect::sql(sql::COUNT_RESTAURANTS))
                    .fetch_one(&self.pool)
                    .await
                    .map_err(store_error)?;
                row.try_get(0).map_err(store_error)
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "restaurant"))]
            async fn restaurant(
                &self,
                id: &RestaurantId,
                freshness: Freshness,
            ) -> Result<Option<Restaurant>, StoreError> {
                let _timer = crate::metrics::QueryTimer::start("restaurant");
                sqlx::query(dialect::sql(sql::SELECT_RESTAURANT))
                    .bind(id.as_str())
                    .fetch_optional(self.read_pool(freshness))
                    .await
                    .map_err(store_error)?
                    .as_ref()
                    .map(restaurant_from)
                    .transpose()
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "menu"))]
            async fn menu(
                &self,
                restaurant: &RestaurantId,
                freshness: Freshness,
            ) -> Result<Vec<MenuItem>, StoreError> {
                let _timer = crate::metrics::QueryTimer::start("menu");
                sqlx::query(dialect::sql(sql::SELECT_MENU))
                    .bind(restaurant.as_str())
                    .fetch_all(self.read_pool(freshness))
                    .await
                    .map_err(store_error)?
                    .iter()
                    .map(menu_item_from)
                    .collect()
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "tables"))]
            async fn tables(
                &self,
                restaurant: &RestaurantId,
                freshness: Freshness,
            ) -> Result<Vec<Table>, StoreError> {
                let _timer = crate::metrics::QueryTimer::start("tables");
                sqlx::query(dialect::sql(sql::SELECT_TABLES))
                    .bind(restaurant.as_str())
                    .fetch_all(self.read_pool(freshness))
                    .await
                    .map_err(store_error)?
                    .iter()
                    .map(table_from)
                    .collect()
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "order"))]
            async fn order(
                &self,
                id: &OrderId,
                freshness: Freshness,
            ) -> Result<Option<Order>, StoreError> {
                let _timer = crate::metrics::QueryTimer::start("order");
                order_by_id(&mut *self.read_connection(freshness).await?, id, None).await
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "orders"))]
            async fn orders(
                &self,
                query: &OrderQuery,
                freshness: Freshness,
            ) -> Result<OrderPage, StoreError> {
                let _timer = crate::metrics::QueryTimer::start("orders");
                let statement = dialect::built(sql::select_orders(query.statuses.len(), query.before.is_some()));
                let mut q = sqlx::query(&statement).bind(query.restaurant_id.as_str());
                for status in &query.statuses {
                    q = q.bind(status.as_str());
                }
                if let Some((placed_at, id)) = &query.before {
                    // Once per placeholder: `?` cannot name one twice.
                    q = q.bind(placed_at.millis()).bind(placed_at.millis()).bind(id.as_str());
                }
                let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
                let mut conn = self.read_connection(freshness).await?;
                let rows = q
                    .bind(limit)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(store_error)?;
                let seq = match rows.first() {
                    Some(row) => get(row, "page_seq")?,
                    None => 0,
                };
                let mut orders = Vec::with_capacity(rows.len());
                for row in &rows {
                    // The restaurant's row alone: a page without orders.
                    if get::<Option<String>>(row, "o_id")?.is_some() {
                        orders.push(order_from(row)?);
                    }
                }
                Ok(OrderPage { orders: with_items(&mut conn, orders).await?, seq })
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "owner"))]
            async fn owner(&self, thing: Owned<'_>) -> Result<Option<RestaurantId>, StoreError> {
                let _timer = crate::metrics::QueryTimer::start("owner");
                let (statement, id) = match thing {
                    Owned::Order(id) => (sql::OWNER_OF_ORDER, id.as_str()),
                    Owned::Table(id) => (sql::OWNER_OF_TABLE, id.as_str()),
                    Owned::MenuItem(id) => (sql::OWNER_OF_MENU_ITEM, id.as_str()),
                };
                let row = sqlx::query(dialect::sql(statement))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(store_error)?;
                row.map(|row| get(&row, "restaurant_id").map(RestaurantId::from_trusted))
                    .transpose()
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "events"))]
            async fn events(
                &self,
                restaurant: &RestaurantId,
                after: i64,
                limit: usize,
            ) -> Result<Vec<Event>, StoreError> {
                let _timer = crate::metrics::QueryTimer::start("events");
                sqlx::query(dialect::sql(sql::SELECT_EVENTS))
                    .bind(restaurant.as_str())
                    .bind(after)
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(store_error)?
                    .iter()
                    .map(|row| event_from(restaurant, row))
                    .collect()
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "history"))]
            async fn history(
                &self,
                restaurant: &RestaurantId,
            ) -> Result<Option<History>, StoreError> {
                let _timer = crate::metrics::QueryTimer::start("history");
                let row = sqlx::query(dialect::sql(sql::SELECT_HISTORY))
                    .bind(restaurant.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(store_error)?;
                row.map(|row| {
                    Ok(History {
                        last_seq: get(&row, "last_seq")?,
                        first_retained: get(&row, "first_retained")?,
                    })
                })
                .transpose()
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "prune_events"))]
            async fn prune_events(&self, before: Timestamp) -> Result<u64, StoreError> {
                let _timer = crate::metrics::QueryTimer::start("prune_events");
                let done = sqlx::query(dialect::sql(sql::PRUNE_EVENTS))
                    .bind(before.millis())
                    .execute(&self.pool)
                    .await
                    .map_err(store_error)?;
                Ok(done.rows_affected())
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "setting"))]
            async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
                let _timer = crate::metrics::QueryTimer::start("setting");
                let row = sqlx::query(dialect::sql(dialect::SELECT_SETTING))
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(store_error)?;
                row.map(|row| get(&row, "value")).transpose()
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "init_setting"))]
            async fn init_setting(&self, key: &str, value: &str) -> Result<String, StoreError> {
                let _timer = crate::metrics::QueryTimer::start("init_setting");
                sqlx::query(dialect::sql(dialect::INIT_SETTING))
                    .bind(key)
                    .bind(value)
                    .execute(&self.pool)
                    .await
                    .map_err(store_error)?;
                self.setting(key)
                    .await?
                    .ok_or_else(|| StoreError::Internal(format!("setting {key} vanished")))
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "ping"))]
            async fn ping(&self) -> Result<(), StoreError> {
                let _timer = crate::metrics::QueryTimer::start("ping");
                sqlx::query(dialect::sql(sql::PING))
                    .execute(&self.pool)
                    .await
                    .map_err(store_error)?;
                Ok(())
            }
        }

        pub struct $tx {
            tx: TxConnection<$db>,
            restaurant: Restaurant,
            /// As locked at `begin`.
            counters: Counters,
            /// As this transaction leaves them so far (under the lock).
            written: Counters,
            restaurant_changed: bool,
            found: Found,
            /// Sent together at commit (`dialect::BATCH`).
            writes: Vec<Staged>,
            after_commit: Option<(Positions, std::sync::Arc<ReadRouting>)>,
        }

        impl $tx {
            fn stage(&mut self, statement: impl Into<std::borrow::Cow<'static, str>>, values: Vec<Value>) {
                self.writes.push(Staged { statement: statement.into(), values });
            }

            fn text(text: &str) -> Value {
                Value::Text(text.to_owned())
            }

            /// Sends the staged writes, and the restaurant's row if the transaction changed it:
            /// its settings and counters, or its counters alone.
            async fn send_writes(&mut self) -> Result<(), StoreError> {
                let restaurant = &self.restaurant;
                let counters = [
                    Value::Int(self.written.last_seq),
                    Value::Int(self.written.ticket_day.0),
                    Value::Int(self.written.last_ticket),
                    Value::Text(restaurant.id.as_str().to_owned()),
                ];
                if self.restaurant_changed {
                    let mut values = vec![
                        Value::Text(restaurant.name.clone()),
                        Value::Text(restaurant.time_zone.name().to_owned()),
                        Value::Int(restaurant.day_starts_at.minutes()),
                        Value::Bool(restaurant.tax.prices_include_tax),
                        Value::Text(json(&restaurant.tax.rules)?),
                        Value::Text(restaurant.tax.rounding.as_str().to_owned()),
                    ];
                    values.extend(counters);
                    self.stage(sql::UPDATE_RESTAURANT, values);
                } else if self.written != self.counters {
                    // Most commands: the settings stay as they were locked.
                    self.stage(sql::UPDATE_COUNTERS, counters.into());
                }
                let writes = std::mem::take(&mut self.writes);
                for (statement, values) in batches(dialect::BATCH, &writes) {
                    let statement = match statement {
                        std::borrow::Cow::Borrowed(constant) => std::borrow::Cow::Borrowed(dialect::sql(constant)),
                        std::borrow::Cow::Owned(built) => std::borrow::Cow::Owned(dialect::built(built)),
                    };
                    let mut query = sqlx::query(&statement);
                    for value in values {
                        query = bind(query, value);
                    }
                    query.execute(&mut *self.tx.conn).await.map_err(store_error)?;
                }
                Ok(())
            }
        }

        #[async_trait]
        impl RestaurantTx for $tx {
            fn restaurant(&self) -> &Restaurant {
                &self.restaurant
            }

            fn counters(&self) -> &Counters {
                &self.counters
            }

            fn found(&self) -> &Found {
                &self.found
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "tx_order"))]
            async fn order(&mut self, id: &OrderId) -> Result<Option<Order>, StoreError> {
                let _timer = crate::metrics::QueryTimer::start("tx_order");
                order_by_id(&mut self.tx.conn, id, Some(&self.restaurant.id)).await
            }

            async fn insert_order(
                &mut self,
                order: &Order,
                key: &str,
                fingerprint: &str,
            ) -> Result<(), StoreError> {
                let values = vec![
                    Self::text(order.id.as_str()),
                    Self::text(order.restaurant_id.as_str()),
                    Self::text(order.table_id.as_str()),
                    Value::Int(order.number),
                    Self::text(order.status.as_str()),
                    Value::Int(order.total.amount),
                    Self::text(order.total.currency.as_str()),
                    Value::MaybeText(order.note.clone()),
                    Value::MaybeText(order.cancel_reason.clone()),
                    Value::Int(order.placed_at.millis()),
                    Value::Int(order.updated_at.millis()),
                    Value::Int(order.version),
                    Self::text(order.service_mode.as_str()),
                    Value::Text(json(&order.taxes)?),
                    Value::Bool(order.prices_include_tax),
                    Self::text(order.tax_rounding.as_str()),
                    Self::text(key),
                    Self::text(fingerprint),
                ];
                self.stage(sql::INSERT_ORDER, values);
                if order.items.is_empty() {
                    return Ok(());
                }
                let mut values = Vec::with_capacity(order.items.len() * sql::ITEM_VALUES);
                for (line, item) in order.items.iter().enumerate() {
                    values.extend([
                        Self::text(order.id.as_str()),
                        Value::Int(i64::try_from(line).unwrap_or(i64::MAX)),
                        Self::text(item.menu_item_id.as_str()),
                        Self::text(item.name.as_str()),
                        Value::Int(item.unit_price.amount),
                        Value::Int(item.quantity),
                        Value::MaybeText(item.note.clone()),
                        Value::Text(json(&item.options)?),
                        Value::Int(i64::from(item.tax_basis_points.get())),
                    ]);
                }
                self.stage(sql::insert_items(order.items.len()), values);
                Ok(())
            }

            async fn set_ticket(
                &mut self,
                day: BusinessDay,
                number: i64,
            ) -> Result<(), StoreError> {
                self.written.ticket_day = day;
                self.written.last_ticket = number;
                Ok(())
            }

            async fn update_restaurant(&mut self, restaurant: &Restaurant) -> Result<(), StoreError> {
                if restaurant.id != self.restaurant.id {
                    return Err(StoreError::Internal(format!(
                        "restaurant {} written in the transaction of {}",
                        restaurant.id, self.restaurant.id
                    )));
                }
                // Later reads in this transaction see the settings it wrote.
                self.restaurant = restaurant.clone();
                self.restaurant_changed = true;
                Ok(())
            }

            async fn update_order(&mut self, order: &Order) -> Result<(), StoreError> {
                let values = vec![
                    Self::text(order.status.as_str()),
                    Value::Int(order.version),
                    Value::Int(order.updated_at.millis()),
                    Value::MaybeText(order.cancel_reason.clone()),
                    Self::text(order.id.as_str()),
                ];
                self.stage(sql::UPDATE_ORDER, values);
                Ok(())
            }

            async fn insert_table(&mut self, table: &Table) -> Result<(), StoreError> {
                let values = vec![
                    Self::text(table.id.as_str()),
                    Self::text(table.restaurant_id.as_str()),
                    Self::text(table.name.as_str()),
                    Value::Int(Timestamp::now().millis()),
                ];
                self.stage(sql::INSERT_TABLE, values);
                Ok(())
            }

            async fn insert_menu_item(&mut self, item: &MenuItem) -> Result<(), StoreError> {
                let mut values = vec![
                    Self::text(item.id.as_str()),
                    Self::text(item.restaurant_id.as_str()),
                ];
                values.extend(menu_item_values(item)?);
                values.push(Value::Int(Timestamp::now().millis()));
                self.stage(sql::INSERT_MENU_ITEM, values);
                Ok(())
            }

            async fn update_menu_item(&mut self, item: &MenuItem) -> Result<(), StoreError> {
                let mut values = menu_item_values(item)?;
                values.push(Self::text(item.id.as_str()));
                values.push(Self::text(item.restaurant_id.as_str()));
                self.stage(sql::UPDATE_MENU_ITEM, values);
                Ok(())
            }

            async fn insert_staff_call(&mut self, call: &StaffCall) -> Result<(), StoreError> {
                let values = vec![
                    Self::text(call.id.as_str()),
                    Self::text(call.restaurant_id.as_str()),
                    Self::text(call.table_id.as_str()),
                    Value::MaybeText(call.message.clone()),
                    Value::Int(call.at.millis()),
                ];
                self.stage(sql::INSERT_STAFF_CALL, values);
                Ok(())
            }

            /// The next seq is counted here: the restaurant's row is locked since `begin`.
            async fn append_event(
                &mut self,
                kind: EventKind,
                at: Timestamp,
            ) -> Result<Event, StoreError> {
                let seq = self
                    .written
                    .last_seq
                    .checked_add(1)
                    .ok_or_else(|| StoreError::Internal("seq overflow".into()))?;
                let payload = serde_json::to_string(&kind)
                    .map_err(|e| StoreError::Internal(e.to_string()))?;
                let values = vec![
                    Self::text(self.restaurant.id.as_str()),
                    Value::Int(seq),
                    Self::text(kind.name()),
                    Value::Text(payload),
                    Value::Int(at.millis()),
                ];
                self.stage(sql::INSERT_EVENT, values);
                self.written.last_seq = seq;
                Ok(Event {
                    restaurant_id: self.restaurant.id.clone(),
                    seq,
                    at,
                    kind,
                })
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "tx_commit"))]
            async fn commit(self: Box<Self>) -> Result<(), StoreError> {
                let _timer = crate::metrics::QueryTimer::start("tx_commit");
                let mut this = *self;
                this.send_writes().await?;
                this.tx.commit().await?;
                if let Some((positions, routing)) = &this.after_commit {
                    record_write_position(&mut this.tx.conn, positions, routing).await;
                }
                Ok(())
            }
        }
    };
}

pub(super) use sql_store;

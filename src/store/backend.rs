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
            Positions::Wal => super::dialect::numbered::WRITE_POSITION,
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
    pub async fn begin(mut conn: sqlx::pool::PoolConnection<DB>) -> Result<Self, StoreError> {
        <DB::TransactionManager as sqlx::TransactionManager>::begin(&mut conn, None)
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

pub(super) fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Internal(format!("stored {what} is invalid: {value:?}"))
}

macro_rules! sql_store {
    ($store:ident, $tx:ident, $db:ty, $dialect:ident) => {
        use async_trait::async_trait;
        use orderhub_actors::domain::{
            BusinessDay, BusinessDayStart, Currency, Event, EventKind, MenuItem, MenuItemId, Money,
            Order, OrderId, OrderItem, OrderStatus, Restaurant, RestaurantId, StaffCall, Table,
            TableId, TimeZone, Timestamp,
        };
        use orderhub_actors::ports::{
            Counters, Freshness, History, OrderPage, OrderQuery, Owned, RestaurantTx, Store,
        };
        use orderhub_actors::StoreError;
        use sqlx::Row;
        use std::collections::HashMap;

        use crate::store::backend::{corrupt, store_error, Positions, Replica, TxConnection};
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
            })
        }

        fn table_from(row: &DbRow) -> Result<Table, StoreError> {
            Ok(Table {
                id: TableId::from_trusted(get(row, "id")?),
                restaurant_id: RestaurantId::from_trusted(get(row, "restaurant_id")?),
                name: get(row, "name")?,
            })
        }

        fn menu_item_from(row: &DbRow) -> Result<MenuItem, StoreError> {
            Ok(MenuItem {
                id: MenuItemId::from_trusted(get(row, "id")?),
                restaurant_id: RestaurantId::from_trusted(get(row, "restaurant_id")?),
                name: get(row, "name")?,
                price: Money::new(
                    get(row, "price")?,
                    Currency::from_trusted(get(row, "currency")?),
                ),
                available: get(row, "available")?,
            })
        }

        /// An order without its items; `with_items` adds them.
        fn order_from(row: &DbRow) -> Result<Order, StoreError> {
            let status: String = get(row, "status")?;
            Ok(Order {
                id: OrderId::from_trusted(get(row, "id")?),
                restaurant_id: RestaurantId::from_trusted(get(row, "restaurant_id")?),
                table_id: TableId::from_trusted(get(row, "table_id")?),
                number: get(row, "number")?,
                status: OrderStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
                items: Vec::new(),
                total: Money::new(
                    get(row, "total")?,
                    Currency::from_trusted(get(row, "currency")?),
                ),
                note: get(row, "note")?,
                cancel_reason: get(row, "cancel_reason")?,
                placed_at: Timestamp(get(row, "placed_at")?),
                updated_at: Timestamp(get(row, "updated_at")?),
                version: get(row, "version")?,
            })
        }

        fn event_from(restaurant_id: &RestaurantId, row: &DbRow) -> Result<Event, StoreError> {
            let payload: String = get(row, "payload")?;
            let kind: EventKind = serde_json::from_str(&payload)
                .map_err(|e| corrupt("event payload", &e.to_string()))?;
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
                let order_id: String = get(row, "order_id")?;
                let currency = currencies
                    .get(&order_id)
                    .cloned()
                    .ok_or_else(|| corrupt("order item", &order_id))?;
                items.entry(order_id).or_default().push(OrderItem {
                    menu_item_id: MenuItemId::from_trusted(get(row, "menu_item_id")?),
                    name: get(row, "name")?,
                    unit_price: Money::new(get(row, "unit_price")?, currency),
                    quantity: get(row, "quantity")?,
                    note: get(row, "note")?,
                });
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
            replica: Option<Replica<$db>>,
        }

        impl $store {
            pub fn new(pool: sqlx::Pool<$db>) -> Self {
                Self { pool, replica: None }
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
            ) -> Result<Option<Box<dyn RestaurantTx>>, StoreError> {
                let _timer = crate::metrics::QueryTimer::start("begin");
                let conn = self.pool.acquire().await.map_err(store_error)?;
                let mut tx = TxConnection::begin(conn).await?;
                let row = sqlx::query(dialect::sql(dialect::LOCK_RESTAURANT))
                    .bind(restaurant.as_str())
                    .fetch_optional(&mut *tx.conn)
                    .await
                    .map_err(store_error)?;
                let Some(row) = row else { return Ok(None) };
                let counters = Counters {
                    last_seq: get(&row, "last_seq")?,
                    ticket_day: BusinessDay(get(&row, "ticket_day")?),
                    last_ticket: get(&row, "last_ticket")?,
                };
                let restaurant = restaurant_from(&row)?;
                let after_commit =
                    self.replica.as_ref().map(|r| (r.positions.clone(), r.routing.clone()));
                let last_seq = counters.last_seq;
                Ok(Some(Box::new($tx { tx, restaurant, counters, last_seq, after_commit })))
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
                    if get::<Option<String>>(row, "id")?.is_some() {
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
            counters: Counters,
            /// The restaurant's seq as this transaction left it so far (under its lock).
            last_seq: i64,
            after_commit: Option<(Positions, std::sync::Arc<ReadRouting>)>,
        }

        impl $tx {
            async fn run<'q>(
                &mut self,
                query: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>,
            ) -> Result<u64, StoreError> {
                let done = query.execute(&mut *self.tx.conn).await.map_err(store_error)?;
                Ok(done.rows_affected())
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

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "tx_table"))]
            async fn table(&mut self, id: &TableId) -> Result<Option<Table>, StoreError> {
                let _timer = crate::metrics::QueryTimer::start("tx_table");
                sqlx::query(dialect::sql(sql::SELECT_TABLE))
                    .bind(id.as_str())
                    .bind(self.restaurant.id.as_str())
                    .fetch_optional(&mut *self.tx.conn)
                    .await
                    .map_err(store_error)?
                    .as_ref()
                    .map(table_from)
                    .transpose()
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "tx_menu_items"))]
            async fn menu_items(
                &mut self,
                ids: &[MenuItemId],
            ) -> Result<Vec<MenuItem>, StoreError> {
                let _timer = crate::metrics::QueryTimer::start("tx_menu_items");
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let statement = dialect::built(sql::select_menu_items(ids.len()));
                let mut query = sqlx::query(&statement).bind(self.restaurant.id.as_str());
                for id in ids {
                    query = query.bind(id.as_str());
                }
                query
                    .fetch_all(&mut *self.tx.conn)
                    .await
                    .map_err(store_error)?
                    .iter()
                    .map(menu_item_from)
                    .collect()
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "tx_order"))]
            async fn order(&mut self, id: &OrderId) -> Result<Option<Order>, StoreError> {
                let _timer = crate::metrics::QueryTimer::start("tx_order");
                order_by_id(&mut self.tx.conn, id, Some(&self.restaurant.id)).await
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "tx_order_by_key"))]
            async fn order_by_key(
                &mut self,
                key: &str,
            ) -> Result<Option<(String, OrderId)>, StoreError> {
                let _timer = crate::metrics::QueryTimer::start("tx_order_by_key");
                let row = sqlx::query(dialect::sql(dialect::ORDER_BY_KEY))
                    .bind(self.restaurant.id.as_str())
                    .bind(key)
                    .fetch_optional(&mut *self.tx.conn)
                    .await
                    .map_err(store_error)?;
                row.map(|row| {
                    Ok((
                        get(&row, "request_fingerprint")?,
                        OrderId::from_trusted(get(&row, "id")?),
                    ))
                })
                .transpose()
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "tx_insert_order"))]
            async fn insert_order(
                &mut self,
                order: &Order,
                key: &str,
                fingerprint: &str,
            ) -> Result<(), StoreError> {
                let _timer = crate::metrics::QueryTimer::start("tx_insert_order");
                let insert = sqlx::query(dialect::sql(sql::INSERT_ORDER))
                    .bind(order.id.as_str())
                    .bind(order.restaurant_id.as_str())
                    .bind(order.table_id.as_str())
                    .bind(order.number)
                    .bind(order.status.as_str())
                    .bind(order.total.amount)
                    .bind(order.total.currency.as_str())
                    .bind(order.note.as_deref())
                    .bind(order.cancel_reason.as_deref())
                    .bind(order.placed_at.millis())
                    .bind(order.updated_at.millis())
                    .bind(order.version)
                    .bind(key)
                    .bind(fingerprint);
                self.run(insert).await?;
                let statement = dialect::built(sql::insert_items(order.items.len()));
                let mut items = sqlx::query(&statement);
                for (line, item) in order.items.iter().enumerate() {
                    items = items
                        .bind(order.id.as_str())
                        .bind(i64::try_from(line).unwrap_or(i64::MAX))
                        .bind(item.menu_item_id.as_str())
                        .bind(item.name.as_str())
                        .bind(item.unit_price.amount)
                        .bind(item.quantity)
                        .bind(item.note.as_deref());
                }
                self.run(items).await?;
                Ok(())
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "tx_set_ticket"))]
            async fn set_ticket(
                &mut self,
                day: BusinessDay,
                number: i64,
            ) -> Result<(), StoreError> {
                let _timer = crate::metrics::QueryTimer::start("tx_set_ticket");
                let id = self.restaurant.id.as_str().to_owned();
                self.run(
                    sqlx::query(dialect::sql(sql::SET_TICKET))
                        .bind(day.0)
                        .bind(number)
                        .bind(id),
                )
                .await?;
                Ok(())
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "tx_update_restaurant"))]
            async fn update_restaurant(&mut self, restaurant: &Restaurant) -> Result<(), StoreError> {
                let _timer = crate::metrics::QueryTimer::start("tx_update_restaurant");
                let update = sqlx::query(dialect::sql(sql::UPDATE_RESTAURANT))
                    .bind(restaurant.name.as_str())
                    .bind(restaurant.time_zone.name())
                    .bind(restaurant.day_starts_at.minutes())
                    .bind(self.restaurant.id.as_str().to_owned());
                self.run(update).await?;
                // Later reads in this transaction see the settings it wrote.
                self.restaurant = restaurant.clone();
                Ok(())
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "tx_update_order"))]
            async fn update_order(&mut self, order: &Order) -> Result<(), StoreError> {
                let _timer = crate::metrics::QueryTimer::start("tx_update_order");
                let update = sqlx::query(dialect::sql(sql::UPDATE_ORDER))
                    .bind(order.status.as_str())
                    .bind(order.version)
                    .bind(order.updated_at.millis())
                    .bind(order.cancel_reason.as_deref())
                    .bind(order.id.as_str());
                self.run(update).await?;
                Ok(())
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "tx_insert_table"))]
            async fn insert_table(&mut self, table: &Table) -> Result<(), StoreError> {
                let _timer = crate::metrics::QueryTimer::start("tx_insert_table");
                let insert = sqlx::query(dialect::sql(sql::INSERT_TABLE))
                    .bind(table.id.as_str())
                    .bind(table.restaurant_id.as_str())
                    .bind(table.name.as_str())
                    .bind(Timestamp::now().millis());
                self.run(insert).await?;
                Ok(())
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "tx_insert_menu_item"))]
            async fn insert_menu_item(&mut self, item: &MenuItem) -> Result<(), StoreError> {
                let _timer = crate::metrics::QueryTimer::start("tx_insert_menu_item");
                let insert = sqlx::query(dialect::sql(sql::INSERT_MENU_ITEM))
                    .bind(item.id.as_str())
                    .bind(item.restaurant_id.as_str())
                    .bind(item.name.as_str())
                    .bind(item.price.amount)
                    .bind(item.available)
                    .bind(Timestamp::now().millis());
                self.run(insert).await?;
                Ok(())
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "tx_set_availability"))]
            async fn set_availability(&mut self, item: &MenuItem) -> Result<(), StoreError> {
                let _timer = crate::metrics::QueryTimer::start("tx_set_availability");
                let update = sqlx::query(dialect::sql(sql::SET_AVAILABILITY))
                    .bind(item.available)
                    .bind(item.id.as_str())
                    .bind(item.restaurant_id.as_str());
                self.run(update).await?;
                Ok(())
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "tx_insert_staff_call"))]
            async fn insert_staff_call(&mut self, call: &StaffCall) -> Result<(), StoreError> {
                let _timer = crate::metrics::QueryTimer::start("tx_insert_staff_call");
                let insert = sqlx::query(dialect::sql(sql::INSERT_STAFF_CALL))
                    .bind(call.id.as_str())
                    .bind(call.restaurant_id.as_str())
                    .bind(call.table_id.as_str())
                    .bind(call.message.as_deref())
                    .bind(call.at.millis());
                self.run(insert).await?;
                Ok(())
            }

            #[tracing::instrument(name = "store.query", level = "debug", skip_all, fields(operation = "tx_append_event"))]
            async fn append_event(
                &mut self,
                kind: EventKind,
                at: Timestamp,
            ) -> Result<Event, StoreError> {
                let _timer = crate::metrics::QueryTimer::start("tx_append_event");
                let next = sqlx::query(dialect::sql(dialect::NEXT_SEQ))
                    .bind(self.restaurant.id.as_str().to_owned());
                let seq: i64 = if dialect::NEXT_SEQ_RETURNS {
                    let row = next.fetch_one(&mut *self.tx.conn).await.map_err(store_error)?;
                    get(&row, "last_seq")?
                } else {
                    // The restaurant's row is locked by this transaction since `begin`.
                    self.run(next).await?;
                    self.last_seq + 1
                };
                self.last_seq = seq;
                let payload = serde_json::to_string(&kind)
                    .map_err(|e| StoreError::Internal(e.to_string()))?;
                let insert = sqlx::query(dialect::sql(sql::INSERT_EVENT))
                    .bind(self.restaurant.id.as_str().to_owned())
                    .bind(seq)
                    .bind(kind.name())
                    .bind(payload)
                    .bind(at.millis());
                self.run(insert).await?;
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

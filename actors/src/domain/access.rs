//! Who may do what. A token's holder is a [`Principal`]; every rule is a function of it.

use serde::{Deserialize, Serialize};

use super::{DomainError, Order, RestaurantId, TableId, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A phone at a table: its own table's orders only.
    Customer,
    /// Kitchen and hall: everything of one restaurant.
    Staff,
    /// Operators: every restaurant, and creating them.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Staff => "staff",
            Role::Admin => "admin",
        }
    }
}

/// The verified holder of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub role: Role,
    restaurant_id: Option<RestaurantId>,
    table_id: Option<TableId>,
    /// When the token stops being valid; subscriptions end then.
    expires_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    #[error("a {0} token needs restaurant_id")]
    MissingRestaurant(&'static str),
    #[error("a customer token needs table_id")]
    MissingTable,
}

impl Principal {
    /// Scope comes with the role: customers have a restaurant and a table, staff a restaurant,
    /// admins neither (any scope they carry is ignored).
    pub fn new(
        subject: String,
        role: Role,
        restaurant_id: Option<RestaurantId>,
        table_id: Option<TableId>,
    ) -> Result<Self, PrincipalError> {
        let (restaurant_id, table_id) = match role {
            Role::Admin => (None, None),
            Role::Staff => (
                Some(restaurant_id.ok_or(PrincipalError::MissingRestaurant("staff"))?),
                None,
            ),
            Role::Customer => (
                Some(restaurant_id.ok_or(PrincipalError::MissingRestaurant("customer"))?),
                Some(table_id.ok_or(PrincipalError::MissingTable)?),
            ),
        };
        Ok(Self {
            subject,
            role,
            restaurant_id,
            table_id,
            expires_at: None,
        })
    }

    /// An operator or the system itself: every restaurant.
    pub fn admin(subject: &str) -> Self {
        Self {
            subject: subject.to_owned(),
            role: Role::Admin,
            restaurant_id: None,
            table_id: None,
            expires_at: None,
        }
    }

    pub fn expiring_at(self, at: Timestamp) -> Self {
        Self {
            expires_at: Some(at),
            ..self
        }
    }

    pub fn expires_at(&self) -> Option<Timestamp> {
        self.expires_at
    }

    pub fn restaurant_id(&self) -> Option<&RestaurantId> {
        self.restaurant_id.as_ref()
    }

    pub fn table_id(&self) -> Option<&TableId> {
        self.table_id.as_ref()
    }

    fn in_restaurant(&self, restaurant: &RestaurantId) -> bool {
        self.role == Role::Admin || self.restaurant_id.as_ref() == Some(restaurant)
    }

    fn is_staff_of(&self, restaurant: &RestaurantId) -> bool {
        self.role != Role::Customer && self.in_restaurant(restaurant)
    }

    fn at_table(&self, restaurant: &RestaurantId, table: &TableId) -> bool {
        self.is_staff_of(restaurant)
            || (self.in_restaurant(restaurant) && self.table_id.as_ref() == Some(table))
    }

    /// Reading a restaurant and its menu: anyone scoped to it.
    pub fn may_view_restaurant(&self, restaurant: &RestaurantId) -> Result<(), DomainError> {
        self.in_restaurant(restaurant)
            .then_some(())
            .ok_or_else(|| forbidden("this token is not for that restaurant"))
    }

    /// Tables, order lists, status changes, availability: staff of the restaurant.
    pub fn may_operate(&self, restaurant: &RestaurantId) -> Result<(), DomainError> {
        if self.is_staff_of(restaurant) {
            Ok(())
        } else if self.role == Role::Customer {
            Err(forbidden("staff only"))
        } else {
            Err(forbidden("this token is not for that restaurant"))
        }
    }

    /// Ordering for, or calling staff to, a table: that table's customer or staff.
    pub fn may_act_for_table(
        &self,
        restaurant: &RestaurantId,
        table: &TableId,
    ) -> Result<(), DomainError> {
        self.at_table(restaurant, table)
            .then_some(())
            .ok_or_else(|| forbidden("this token is not for that table"))
    }

    /// Whether the order is visible at all. Callers answer NOT_FOUND when it is not, so
    /// that nobody learns that another table's order exists.
    pub fn may_see_order(&self, order: &Order) -> bool {
        self.at_table(&order.restaurant_id, &order.table_id)
    }

    /// Changing a restaurant's settings (name, time zone, business-day start): an admin. A
    /// manager of that restaurant will be allowed here too once that role exists.
    pub fn may_configure(&self, _restaurant: &RestaurantId) -> Result<(), DomainError> {
        self.may_administer()
    }

    pub fn may_administer(&self) -> Result<(), DomainError> {
        (self.role == Role::Admin)
            .then_some(())
            .ok_or_else(|| forbidden("admin only"))
    }
}

fn forbidden(why: &str) -> DomainError {
    DomainError::Forbidden(why.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (RestaurantId, TableId) {
        (RestaurantId::generate(), TableId::generate())
    }

    #[test]
    fn scope_follows_role() {
        let (r, t) = ids();
        assert_eq!(
            Principal::new("s".into(), Role::Staff, None, None),
            Err(PrincipalError::MissingRestaurant("staff"))
        );
        assert_eq!(
            Principal::new("c".into(), Role::Customer, Some(r.clone()), None),
            Err(PrincipalError::MissingTable)
        );
        let admin = Principal::new("a".into(), Role::Admin, Some(r), Some(t)).unwrap();
        assert_eq!(admin.restaurant_id(), None);
    }

    #[test]
    fn matrix() {
        let (r, t) = ids();
        let (other_r, other_t) = ids();
        let customer =
            Principal::new("c".into(), Role::Customer, Some(r.clone()), Some(t.clone())).unwrap();
        let staff = Principal::new("s".into(), Role::Staff, Some(r.clone()), None).unwrap();
        let admin = Principal::new("a".into(), Role::Admin, None, None).unwrap();

        assert!(customer.may_view_restaurant(&r).is_ok());
        assert!(customer.may_view_restaurant(&other_r).is_err());
        assert!(customer.may_operate(&r).is_err());
        assert!(customer.may_act_for_table(&r, &t).is_ok());
        assert!(customer.may_act_for_table(&r, &other_t).is_err());
        assert!(customer.may_administer().is_err());

        assert!(staff.may_operate(&r).is_ok());
        assert!(staff.may_operate(&other_r).is_err());
        assert!(staff.may_act_for_table(&r, &other_t).is_ok());
        assert!(staff.may_act_for_table(&other_r, &t).is_err());
        assert!(staff.may_administer().is_err());

        assert!(admin.may_operate(&other_r).is_ok());
        assert!(admin.may_act_for_table(&other_r, &other_t).is_ok());
        assert!(admin.may_administer().is_ok());
    }
}

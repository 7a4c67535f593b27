//! Who may do what. A token's holder is a [`Principal`]; every rule is a function of it.

use serde::{Deserialize, Serialize};

use super::{DomainError, Order, RestaurantId, TableId, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A phone at a table: its own table's orders only.
    Customer,
    /// Kitchen and hall: the floor and the kitchen of one restaurant.
    Staff,
    /// One restaurant's manager: everything its staff may, plus its settings, menu and tables.
    Manager,
    /// Operators: every restaurant, and creating them.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Staff => "staff",
            Role::Manager => "manager",
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
    /// Scope comes with the role: customers have a restaurant and a table, staff and managers a
    /// restaurant, admins neither (any scope they carry is ignored, and so is a table given to
    /// staff or a manager).
    pub fn new(
        subject: String,
        role: Role,
        restaurant_id: Option<RestaurantId>,
        table_id: Option<TableId>,
    ) -> Result<Self, PrincipalError> {
        let (restaurant_id, table_id) = match role {
            Role::Admin => (None, None),
            Role::Staff | Role::Manager => (
                Some(restaurant_id.ok_or(PrincipalError::MissingRestaurant(role.as_str()))?),
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

    /// Spelled out per role, so that a new role is a decision here and not a default.
    fn is_staff_of(&self, restaurant: &RestaurantId) -> bool {
        match self.role {
            Role::Customer => false,
            Role::Staff | Role::Manager | Role::Admin => self.in_restaurant(restaurant),
        }
    }

    fn is_manager_of(&self, restaurant: &RestaurantId) -> bool {
        match self.role {
            Role::Customer | Role::Staff => false,
            Role::Manager | Role::Admin => self.in_restaurant(restaurant),
        }
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

    /// Tables, order lists, status changes, availability, the restaurant's events: its staff,
    /// its manager, or an admin.
    ///
    /// Errors: `Forbidden` for a customer, or for a token of another restaurant.
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

    /// Shaping a restaurant (its settings, tax settings, tables, menu items and stations, its
    /// sessions): a manager of that restaurant, or an admin (the contract's "Admin, or a
    /// manager of that restaurant").
    ///
    /// Errors: `Forbidden` for customers and staff of the restaurant, and for any token of
    /// another restaurant.
    pub fn may_manage(&self, restaurant: &RestaurantId) -> Result<(), DomainError> {
        if self.is_manager_of(restaurant) {
            Ok(())
        } else if self.in_restaurant(restaurant) {
            Err(forbidden("manager or admin only"))
        } else {
            Err(forbidden("this token is not for that restaurant"))
        }
    }

    /// Creating restaurants: an admin only.
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
            Principal::new("m".into(), Role::Manager, None, Some(t.clone())),
            Err(PrincipalError::MissingRestaurant("manager"))
        );
        let manager =
            Principal::new("m".into(), Role::Manager, Some(r.clone()), Some(t.clone())).unwrap();
        assert_eq!(manager.restaurant_id(), Some(&r));
        assert_eq!(manager.table_id(), None);
        assert_eq!(
            Principal::new("c".into(), Role::Customer, Some(r.clone()), None),
            Err(PrincipalError::MissingTable)
        );
        let admin = Principal::new("a".into(), Role::Admin, Some(r), Some(t)).unwrap();
        assert_eq!(admin.restaurant_id(), None);
    }

    /// Every rule for every role, at its own table, at another table of its restaurant, and in
    /// another restaurant. Staff and manager tokens carry no table: "own table" is just a
    /// table of their restaurant.
    #[test]
    fn every_rule_for_every_role_in_and_out_of_its_restaurant() {
        type Rule = fn(&Principal, &RestaurantId, &TableId) -> bool;
        let (r, t) = ids();
        let (other_r, other_t) = ids();
        let another_t = TableId::generate();
        let scoped =
            |role| Principal::new(format!("{role:?}"), role, Some(r.clone()), Some(t.clone()));
        let roles = [
            scoped(Role::Customer).unwrap(),
            scoped(Role::Staff).unwrap(),
            scoped(Role::Manager).unwrap(),
            Principal::admin("a"),
        ];
        let places = [(&r, &t), (&r, &another_t), (&other_r, &other_t)];
        // Per role (customer, staff, manager, admin): own table, another table, another
        // restaurant.
        let o = true;
        let x = false;
        let rules: [(&str, Rule, [[bool; 3]; 4]); 6] = [
            (
                "view_restaurant",
                |p, r, _| p.may_view_restaurant(r).is_ok(),
                [[o, o, x], [o, o, x], [o, o, x], [o, o, o]],
            ),
            (
                "operate",
                |p, r, _| p.may_operate(r).is_ok(),
                [[x, x, x], [o, o, x], [o, o, x], [o, o, o]],
            ),
            (
                "act_for_table",
                |p, r, t| p.may_act_for_table(r, t).is_ok(),
                [[o, x, x], [o, o, x], [o, o, x], [o, o, o]],
            ),
            (
                "configure",
                |p, r, _| p.may_manage(r).is_ok(),
                [[x, x, x], [x, x, x], [o, o, x], [o, o, o]],
            ),
            (
                "manage",
                |p, r, _| p.may_manage(r).is_ok(),
                [[x, x, x], [x, x, x], [o, o, x], [o, o, o]],
            ),
            (
                "administer",
                |p, _, _| p.may_administer().is_ok(),
                [[x, x, x], [x, x, x], [x, x, x], [o, o, o]],
            ),
        ];
        let mut wrong = Vec::new();
        for (name, rule, expected) in &rules {
            for (principal, expected) in roles.iter().zip(expected) {
                for ((restaurant, table), expected) in places.iter().zip(expected) {
                    if rule(principal, restaurant, table) != *expected {
                        wrong.push(format!(
                            "{name} for {:?} at {:?}: expected {expected}",
                            principal.role,
                            (restaurant == &&r, table == &&t)
                        ));
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn refusals_say_why() {
        let (r, _) = ids();
        let (other_r, _) = ids();
        let staff = Principal::new("s".into(), Role::Staff, Some(r.clone()), None).unwrap();
        let manager = Principal::new("m".into(), Role::Manager, Some(r.clone()), None).unwrap();
        assert_eq!(
            staff.may_manage(&r),
            Err(forbidden("manager or admin only"))
        );
        assert_eq!(
            manager.may_manage(&other_r),
            Err(forbidden("this token is not for that restaurant"))
        );
        assert_eq!(
            manager.may_operate(&other_r),
            Err(forbidden("this token is not for that restaurant"))
        );
        assert_eq!(manager.may_administer(), Err(forbidden("admin only")));
    }
}

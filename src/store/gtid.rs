//! MySQL and MariaDB GTIDs as the single number [`ReadRouting`](super::routing::ReadRouting)
//! compares, like a PostgreSQL LSN.
//!
//! This assumes one primary that takes every write (the set-up the README describes): its
//! transactions are numbered 1, 2, 3… in commit order, and that number is the position.
//! - MariaDB (`0-1-123`: domain, server id, seq_no): the seq_no in the primary's replication
//!   domain (`@@gtid_domain_id`). A replica's `@@gtid_slave_pos` lists one GTID per domain;
//!   it applies a domain's transactions in order, so seq_no N there means all up to N.
//! - MySQL 8 (`3E11FA47-…:1-123:125-130`): the transaction numbers of the primary's
//!   `@@server_uuid`. After a commit, the highest one executed (at or past ours); on the
//!   replica, the end of the first interval (everything up to it is applied, even while a
//!   multi-threaded applier leaves gaps after it). Checked against MySQL's documentation only.

/// Which server, and how it names its primary's transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Primary {
    /// MariaDB: the primary's `@@gtid_domain_id`.
    MariaDb { domain: u32 },
    /// MySQL 8: the primary's `@@server_uuid`.
    MySql { server_uuid: String },
}

impl Primary {
    /// The statement that reads, on the committing connection, where its commit stands.
    pub fn last_gtid_query(&self) -> &'static str {
        match self {
            Primary::MariaDb { .. } => super::dialect::mysql::LAST_GTID_MARIADB,
            Primary::MySql { .. } => super::dialect::mysql::LAST_GTID_MYSQL,
        }
    }

    /// The statement that reads, on the replica, what it has applied.
    pub fn applied_query(&self) -> &'static str {
        match self {
            Primary::MariaDb { .. } => super::dialect::mysql::APPLIED_MARIADB,
            Primary::MySql { .. } => super::dialect::mysql::APPLIED_MYSQL,
        }
    }

    /// Where the commit just made stands, from what `last_gtid_query` returned; None for an
    /// empty or foreign answer (a session that has not written).
    pub fn written(&self, text: &str) -> Option<u64> {
        match self {
            Primary::MariaDb { domain } => mariadb_seq_no(text, *domain),
            Primary::MySql { server_uuid } => {
                mysql_intervals(text, server_uuid).map(|(_, end)| end).max()
            }
        }
    }

    /// Everything at or before the returned position is applied on the replica, from what
    /// `applied_query` returned there.
    pub fn applied(&self, text: &str) -> Option<u64> {
        match self {
            Primary::MariaDb { domain } => mariadb_seq_no(text, *domain),
            Primary::MySql { server_uuid } => mysql_intervals(text, server_uuid)
                .find_map(|(start, end)| (start == 1).then_some(end)),
        }
    }
}

/// The seq_no of `domain` in a MariaDB GTID list ("0-1-123,1-2-5").
pub fn mariadb_seq_no(text: &str, domain: u32) -> Option<u64> {
    text.split(',').find_map(|gtid| {
        let mut parts = gtid.trim().split('-');
        let (d, _server, seq) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || d.parse::<u32>().ok()? != domain {
            return None;
        }
        seq.parse().ok()
    })
}

/// The intervals of `server_uuid` in a MySQL GTID set ("uuid:1-5:7,uuid2:1-3"), as
/// `(first, last)`; a single number is a one-transaction interval. MySQL prints the set with
/// line breaks after the commas, and the UUID in any case.
pub fn mysql_intervals<'a>(
    text: &'a str,
    server_uuid: &'a str,
) -> impl Iterator<Item = (u64, u64)> + 'a {
    text.split(',')
        .filter_map(move |member| {
            let mut parts = member.trim().split(':');
            let uuid = parts.next()?;
            uuid.eq_ignore_ascii_case(server_uuid.trim())
                .then_some(parts)
        })
        .flatten()
        .filter_map(|interval| match interval.split_once('-') {
            Some((first, last)) => Some((first.parse().ok()?, last.parse().ok()?)),
            None => interval.parse().ok().map(|n| (n, n)),
        })
}

/// Which server `SELECT VERSION()` describes: MariaDB says so in it ("10.11.19-MariaDB-…").
pub fn is_mariadb(version: &str) -> bool {
    version.contains("MariaDB")
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

    #[test]
    fn mariadb_positions_are_the_primary_domains_seq_no() {
        let primary = Primary::MariaDb { domain: 0 };
        assert_eq!(primary.written("0-1-123"), Some(123));
        assert_eq!(primary.applied("1-7-900,0-1-122"), Some(122));
        assert_eq!(primary.applied("1-7-900"), None);
        assert_eq!(primary.written(""), None);
        assert_eq!(primary.written("0-1-x"), None);
        assert_eq!(
            Primary::MariaDb { domain: 1 }.applied("0-1-5, 1-2-6"),
            Some(6)
        );
    }

    #[test]
    fn mysql_positions_count_the_primarys_transactions() {
        let primary = Primary::MySql {
            server_uuid: UUID.to_owned(),
        };
        let other = "aaaaaaaa-71ca-11e1-9e33-c80aa9429562:1-999";
        let executed = format!("{other},\n{}:1-120:122-130", UUID.to_uppercase());
        assert_eq!(
            primary.written(&executed),
            Some(130),
            "at or past the commit"
        );
        assert_eq!(
            primary.applied(&executed),
            Some(120),
            "all before a gap, not past it"
        );
        assert_eq!(primary.applied(&format!("{UUID}:1")), Some(1));
        assert_eq!(primary.applied(other), None);
        assert_eq!(primary.applied(""), None);
    }

    #[test]
    fn the_version_says_which_server() {
        assert!(is_mariadb("10.11.19-MariaDB-0+deb12u1-log"));
        assert!(!is_mariadb("8.0.36"));
    }
}

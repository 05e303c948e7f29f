//! Config errors: every problem found in one file, each naming the file, the key and what is wrong.

use std::cell::RefCell;
use std::fmt;

/// One problem in a config file.
///
/// Displayed as `FILE: KEY: MESSAGE` (`config.toml: route_server.peer[1].asn: 65515 is
/// reserved …`), or `FILE:LINE:COLUMN: MESSAGE` for a TOML syntax error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", Location(.position, .key))]
pub struct ConfigError {
    /// The file as the caller named it.
    pub file: String,
    /// Key path such as `load_balancer[0].backends[2].address`; `None` for a syntax error or an
    /// unreadable file.
    pub key: Option<String>,
    /// 1-based (line, column) of a TOML syntax error.
    pub position: Option<(usize, usize)>,
    /// What is wrong.
    pub message: String,
}

struct Location<'a>(&'a Option<(usize, usize)>, &'a Option<String>);

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((line, column)) = self.0 {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(key) = self.1 {
            write!(f, ": {key}")?;
        }
        Ok(())
    }
}

/// Every problem found in a config file (never empty), displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Lines(.errors))]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
}

struct Lines<'a>(&'a [ConfigError]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.errors.iter()
    }

    pub fn len(&self) -> usize {
        self.errors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.errors.into_iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

/// Problems collected while reading one file; the file name is added at the end.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    found: RefCell<Vec<ConfigError>>,
}

impl Problems {
    fn push(&self, key: Option<String>, position: Option<(usize, usize)>, message: String) {
        self.found.borrow_mut().push(ConfigError {
            file: String::new(),
            key,
            position,
            message,
        });
    }

    /// A problem with the value at `key`.
    pub(crate) fn at(&self, key: impl Into<String>, message: impl Into<String>) {
        self.push(Some(key.into()), None, message.into());
    }

    /// A problem at a position in the text (TOML syntax).
    pub(crate) fn at_position(&self, position: Option<(usize, usize)>, message: impl Into<String>) {
        self.push(None, position, message.into());
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.found.borrow().is_empty()
    }

    pub(crate) fn into_errors(self, file: &str) -> ConfigErrors {
        let mut errors = self.found.into_inner();
        for error in &mut errors {
            error.file = file.to_owned();
        }
        ConfigErrors { errors }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_one_line_per_error() {
        let problems = Problems::default();
        problems.at("route_server.peer[1].asn", "65515 is reserved");
        problems.at_position(Some((3, 7)), "invalid key");
        let errors = problems.into_errors("config.toml");
        assert_eq!(
            errors.to_string(),
            "config.toml: route_server.peer[1].asn: 65515 is reserved\n\
             config.toml:3:7: invalid key"
        );
    }
}

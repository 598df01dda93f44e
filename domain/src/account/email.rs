//! E-mail addresses, compared case-insensitively.

use std::fmt;

/// A syntactically valid e-mail address, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an e-mail address")]
pub struct InvalidEmail(pub String);

impl Email {
    /// Parses and lower-cases an address: one `@`, a local part of 1–64 visible characters, a
    /// domain of dot-separated labels (letters, digits, hyphens) with at least one dot, 254
    /// characters at most.
    pub fn parse(input: &str) -> Result<Email, InvalidEmail> {
        let err = || InvalidEmail(input.to_string());
        let s = input.trim();
        if s.is_empty() || s.len() > 254 {
            return Err(err());
        }
        let (local, domain) = s.split_once('@').ok_or_else(err)?;
        if local.is_empty()
            || local.len() > 64
            || local.starts_with('.')
            || local.ends_with('.')
            || local.contains("..")
            || !local.chars().all(|c| {
                c.is_ascii_graphic()
                    && !matches!(
                        c,
                        '@' | '(' | ')' | ',' | ';' | ':' | '<' | '>' | '[' | ']' | '\\' | '"'
                    )
            })
        {
            return Err(err());
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
            && labels
                .last()
                .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
        if !domain_ok {
            return Err(err());
        }
        Ok(Email(s.to_ascii_lowercase()))
    }

    /// The lower-cased address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address with most of the local part hidden, for logs: `ki***@example.com`.
    pub fn masked(&self) -> String {
        match self.0.split_once('@') {
            Some((local, domain)) => {
                let shown: String = local.chars().take(2).collect();
                format!("{shown}***@{domain}")
            }
            None => "***".to_string(),
        }
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_validated_and_lower_cased() {
        assert_eq!(
            Email::parse(" Kim.MinSu@Example.CO.KR ").unwrap().as_str(),
            "kim.minsu@example.co.kr"
        );
        assert!(Email::parse("a+tag@sub.example.com").is_ok());
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@b.c",
            "a b@example.com",
            "a@@example.com",
            "a@-example.com",
            "a@example..com",
            ".a@example.com",
            "a..b@example.com",
            "a@exa_mple.com",
            "김@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn masking_hides_the_local_part() {
        assert_eq!(
            Email::parse("kimminsu@example.com").unwrap().masked(),
            "ki***@example.com"
        );
    }

    #[test]
    fn an_address_displays_normalised() {
        let email = Email::parse(" Kim@Example.com ").unwrap();
        assert_eq!(email.to_string(), "kim@example.com");
        assert_eq!(email.masked(), "ki***@example.com");
    }
}

//! Tokens in the session's keyring: the freedesktop Secret Service (GNOME Keyring, KWallet), over the
//! session D-Bus. One item per agent in the default collection, labelled "Tend: token for <host>",
//! found by its attributes `application=tend`, `tend-host=<host>`. A session without the service, or
//! with a locked collection (it would ask for a password), is an error: the caller then keeps the
//! token in a file only its owner may read.

use std::collections::HashMap;

use zbus::blocking::Connection;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};

const DEST: &str = "org.freedesktop.secrets";
const SERVICE_PATH: &str = "/org/freedesktop/secrets";
const SERVICE: &str = "org.freedesktop.Secret.Service";
const DEFAULT_COLLECTION: &str = "/org/freedesktop/secrets/aliases/default";

/// What the Hosts screen says of a token kept here.
pub const WHERE: &str = "keyring (Secret Service)";

type Secret = (OwnedObjectPath, Vec<u8>, Vec<u8>, String);

struct Session {
    conn: Connection,
    path: OwnedObjectPath,
}

fn err(what: &str) -> impl Fn(zbus::Error) -> String + '_ {
    move |e| format!("the keyring: {what}: {e}")
}

fn open() -> Result<Session, String> {
    let conn = Connection::session().map_err(err("no session bus"))?;
    let reply = conn
        .call_method(Some(DEST), SERVICE_PATH, Some(SERVICE), "OpenSession", &("plain", Value::from("")))
        .map_err(err("no Secret Service"))?;
    let (_, path): (OwnedValue, OwnedObjectPath) = reply.body().deserialize().map_err(err("OpenSession"))?;
    Ok(Session { conn, path })
}

fn attributes(host: &str) -> HashMap<&str, &str> {
    HashMap::from([("application", "tend"), ("tend-host", host)])
}

/// The items of `host`'s token: (unlocked, locked).
fn find(s: &Session, host: &str) -> Result<(Vec<OwnedObjectPath>, Vec<OwnedObjectPath>), String> {
    let reply = s
        .conn
        .call_method(Some(DEST), SERVICE_PATH, Some(SERVICE), "SearchItems", &(attributes(host),))
        .map_err(err("SearchItems"))?;
    reply.body().deserialize().map_err(err("SearchItems"))
}

/// Keep `token` for `host`, replacing an older one.
pub fn store(host: &str, token: &str) -> Result<(), String> {
    let s = open()?;
    let label = format!("Tend: token for {host}");
    let mut props: HashMap<&str, Value> = HashMap::new();
    props.insert("org.freedesktop.Secret.Item.Label", Value::from(label.as_str()));
    props.insert("org.freedesktop.Secret.Item.Attributes", Value::from(attributes(host)));
    let session: ObjectPath = s.path.as_ref();
    let secret = (session, Vec::<u8>::new(), token.as_bytes().to_vec(), "text/plain");
    let reply = s
        .conn
        .call_method(
            Some(DEST),
            DEFAULT_COLLECTION,
            Some("org.freedesktop.Secret.Collection"),
            "CreateItem",
            &(props, secret, true),
        )
        .map_err(err("CreateItem"))?;
    let (_, prompt): (OwnedObjectPath, OwnedObjectPath) =
        reply.body().deserialize().map_err(err("CreateItem"))?;
    if prompt.as_str() != "/" {
        return Err("the keyring is locked (it would ask for a password)".into());
    }
    Ok(())
}

/// The token kept for `host`, if there is one and the keyring is open.
pub fn load(host: &str) -> Result<Option<String>, String> {
    let s = open()?;
    let (unlocked, _) = find(&s, host)?;
    if unlocked.is_empty() {
        return Ok(None);
    }
    let reply = s
        .conn
        .call_method(Some(DEST), SERVICE_PATH, Some(SERVICE), "GetSecrets", &(unlocked, s.path.as_ref()))
        .map_err(err("GetSecrets"))?;
    let secrets: HashMap<OwnedObjectPath, Secret> = reply.body().deserialize().map_err(err("GetSecrets"))?;
    Ok(secrets.into_values().next().and_then(|(_, _, value, _)| String::from_utf8(value).ok()))
}

/// Forget `host`'s token.
pub fn delete(host: &str) -> Result<(), String> {
    let s = open()?;
    let (unlocked, _) = find(&s, host)?;
    for item in unlocked {
        s.conn
            .call_method(Some(DEST), item.as_ref(), Some("org.freedesktop.Secret.Item"), "Delete", &())
            .map_err(err("Delete"))?;
    }
    Ok(())
}

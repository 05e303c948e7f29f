//! stub, being written
use super::*;
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct UpdateMessage { pub withdrawn: Vec<Ipv4Prefix>, pub attrs: PathAttributes, pub nlri: Vec<Ipv4Prefix> }
impl UpdateMessage { pub fn emit(&self, _ctx: &SessionContext, _out: &mut Vec<u8>) { todo!() } }
pub struct Update;
impl Update { pub fn parse(_b: &[u8], _c: &SessionContext) -> Result<Update, UpdateError> { todo!() } pub fn to_message(&self) -> UpdateMessage { todo!() } }
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("x")]
pub struct UpdateError;
impl UpdateError { pub fn to_notification(&self) -> Notification { todo!() } }

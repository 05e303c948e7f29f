//! stub, being written
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct PathAttributes {}
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Origin { Igp, Egp, Incomplete }
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct AsPath {}
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum AsSegment {}

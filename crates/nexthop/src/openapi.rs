//! `GET /v1/openapi.json`: the API as an OpenAPI 3.1 document, built from the endpoint table
//! the router is built from ([`crate::api::endpoints`]) and from the contract types
//! ([`api_types`], `schemars::JsonSchema`): nothing in it is written by hand but the summaries.
//!
//! Schemas are JSON Schema 2020-12 (what OpenAPI 3.1 uses), named after their types under
//! `components/schemas`. A query type's fields become the operation's query parameters; a path
//! segment `:name` becomes `{name}`. Every operation may answer an [`api_types::ErrorBody`]
//! with a 4xx/5xx status. Tokens are HTTP bearer tokens, needed or not depending on the
//! server's `[api]` settings.

use schemars::generate::SchemaSettings;
use schemars::SchemaGenerator;
use serde_json::{json, Map, Value};

use crate::api::{endpoints, Answer};

/// Where the document keeps named schemas.
const SCHEMAS: &str = "/components/schemas";

/// The whole document.
pub fn document() -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = SCHEMAS.into();
    let mut g = SchemaGenerator::new(settings);
    let error = g.subschema_for::<api_types::ErrorBody>();
    let mut paths = Map::new();
    for e in endpoints() {
        let mut parameters: Vec<Value> = Vec::new();
        let mut path = String::new();
        for (i, seg) in e.path.split('/').enumerate() {
            if i > 0 {
                path.push('/');
            }
            match seg.strip_prefix(':') {
                Some(name) => {
                    path.push_str(&format!("{{{name}}}"));
                    parameters.push(json!({
                        "name": name, "in": "path", "required": true,
                        "schema": { "type": "string" }
                    }));
                }
                None => path.push_str(seg),
            }
        }
        if let Some(query) = e.query {
            parameters.extend(query_parameters(&mut g, query));
        }
        let ok = match e.answer {
            Answer::Json(schema) => json!({
                "description": "OK",
                "content": { "application/json": { "schema": schema(&mut g) } }
            }),
            Answer::Bytes(media) => json!({
                "description": "OK",
                "content": { media: { "schema": { "type": "string", "contentMediaType": media } } }
            }),
        };
        let op = json!({
            "summary": e.summary,
            "operationId": operation_id(e.method, e.path),
            "parameters": parameters,
            "responses": {
                "200": ok,
                "4XX": { "description": "Refused: the error says why",
                         "content": { "application/json": { "schema": error.clone() } } },
                "5XX": { "description": "The controller could not answer",
                         "content": { "application/json": { "schema": error.clone() } } }
            }
        });
        let entry = paths
            .entry(path)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            m.insert(e.method.to_string(), op);
        }
    }
    let schemas: Map<String, Value> = g.take_definitions(true).into_iter().collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "nexthop API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The nexthop controller's REST API (SPEC §6): the route server, the load balancers and the fabric. Generated from the router's endpoint table and the contract types (crates/api-types)."
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } }
        },
        // No token (a loopback API without token files) or a bearer token.
        "security": [ {}, { "bearer": [] } ]
    })
}

/// The query parameters of a query type: one per field, optional, with the field's schema and
/// description.
fn query_parameters(
    g: &mut SchemaGenerator,
    query: fn(&mut SchemaGenerator) -> schemars::Schema,
) -> Vec<Value> {
    // The query type itself is not kept as a named schema: its fields are the parameters.
    let mut inline = g.settings().clone();
    inline.inline_subschemas = true;
    let mut own = SchemaGenerator::new(inline);
    let schema = query(&mut own).to_value();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, prop)| {
            let mut prop = prop.clone();
            let description = prop
                .as_object_mut()
                .and_then(|o| o.remove("description"))
                .unwrap_or(Value::Null);
            // `Option<T>` fields are `[T, null]`: a query parameter is absent, never null.
            if let Some(Value::Array(types)) = prop.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let t = types.remove(0);
                    prop["type"] = t;
                }
            }
            let mut p = json!({ "name": name, "in": "query", "required": false, "schema": prop });
            if !description.is_null() {
                p["description"] = description;
            }
            // Keep `g` in use for the named schemas a field may refer to.
            let _ = &g;
            p
        })
        .collect()
}

/// `getV1LbName`, `postV1Reload`: unique per method and path.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_string();
    for part in path.split(['/', '-', '.', ':']).filter(|p| !p.is_empty()) {
        let mut c = part.chars();
        if let Some(f) = c.next() {
            id.extend(f.to_uppercase());
            id.push_str(c.as_str());
        }
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in `v`.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    #[test]
    fn every_endpoint_is_described_and_every_reference_resolves() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        let mut ids = std::collections::HashSet::new();
        for e in endpoints() {
            let path = e.path.replace(":name", "{name}");
            let op = &paths[&path][e.method];
            assert!(op.is_object(), "{} {path} missing", e.method);
            assert!(ids.insert(op["operationId"].as_str().unwrap().to_string()));
            assert!(op["responses"]["200"]["content"].is_object(), "{path}");
        }
        assert_eq!(
            paths
                .values()
                .map(|p| p.as_object().unwrap().len())
                .sum::<usize>(),
            endpoints().len()
        );
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{r} is not a component reference"));
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{r} does not resolve"
            );
        }
    }

    #[test]
    fn contract_types_are_schemas_with_their_wire_names() {
        let doc = document();
        let s = &doc["components"]["schemas"];
        // camelCase keys as the API sends them, closed sets as enums of their strings.
        let peer = &s["PeerView"]["properties"];
        for key in [
            "peerIp",
            "routesReceived",
            "lastError",
            "addressFamilies",
            "state",
        ] {
            assert!(peer[key].is_object(), "PeerView.{key}: {peer}");
        }
        let states = &s["SessionState"]["enum"];
        assert!(
            states.as_array().unwrap().contains(&json!("Established")),
            "{states}"
        );
        // Query types become parameters, not schemas.
        let trace = &doc["paths"]["/v1/trace"]["get"]["parameters"];
        let names: Vec<&str> = trace
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for n in ["nic", "dst", "proto", "sport", "dport"] {
            assert!(names.contains(&n), "{names:?}");
        }
        assert!(s.get("TraceQuery").is_none());
        let lb = &doc["paths"]["/v1/lb/{name}/admin"]["post"]["parameters"];
        assert_eq!(lb[0]["in"], "path");
        assert_eq!(lb[0]["name"], "name");
    }
}

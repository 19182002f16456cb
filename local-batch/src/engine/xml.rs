//! The S3 Control wire format (REST-XML) both ways: a request body into the JSON members of the
//! job model, and JSON members into an answer. Lists are `<member>` children and maps `<entry>`
//! children, as the S3 Control model serialises them.

use serde_json::{Map, Value};

/// The S3 Control XML namespace.
pub const NS: &str = "http://awss3control.amazonaws.com/doc/2018-08-20/";

const BOOLEANS: [&str; 4] = [
    "ConfirmationRequired",
    "Enabled",
    "EnableManifestOutput",
    "EligibleForReplication",
];
const INTEGERS: [&str; 3] = [
    "Priority",
    "ObjectSizeGreaterThanBytes",
    "ObjectSizeLessThanBytes",
];
/// Members that are maps (`<entry><key/><value/></entry>`).
const MAPS: [&str; 1] = ["UserArguments"];

/// Parses a request body into its root element name and members.
pub fn parse(body: &str) -> Result<(String, Value), String> {
    let doc = roxmltree::Document::parse(body).map_err(|e| format!("malformed XML: {e}"))?;
    let root = doc.root_element();
    Ok((root.tag_name().name().to_string(), element(root, "")))
}

fn element(node: roxmltree::Node, name: &str) -> Value {
    let kids: Vec<roxmltree::Node> = node.children().filter(|n| n.is_element()).collect();
    if kids.is_empty() {
        let text = node.text().unwrap_or("").trim().to_string();
        if BOOLEANS.contains(&name) {
            return Value::Bool(text == "true");
        }
        if INTEGERS.contains(&name) {
            return text
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or(Value::String(text));
        }
        return Value::String(text);
    }
    if MAPS.contains(&name) {
        let mut m = Map::new();
        for e in kids {
            let field = |f: &str| {
                e.children()
                    .find(|c| c.tag_name().name() == f)
                    .and_then(|c| c.text())
                    .unwrap_or("")
                    .to_string()
            };
            m.insert(field("key"), Value::String(field("value")));
        }
        return Value::Object(m);
    }
    if kids.iter().all(|k| k.tag_name().name() == "member") {
        return Value::Array(kids.into_iter().map(|k| element(k, "member")).collect());
    }
    let mut m = Map::new();
    for k in kids {
        let n = k.tag_name().name();
        m.insert(n.to_string(), element(k, n));
    }
    Value::Object(m)
}

/// Escapes text for an element body.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Writes `value` as element `name` (nulls are left out).
pub fn write(name: &str, value: &Value, out: &mut String) {
    match value {
        Value::Null => {}
        Value::Object(m) if MAPS.contains(&name) => {
            out.push_str(&format!("<{name}>"));
            for (k, v) in m {
                let v = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                out.push_str(&format!(
                    "<entry><key>{}</key><value>{}</value></entry>",
                    escape(k),
                    escape(&v)
                ));
            }
            out.push_str(&format!("</{name}>"));
        }
        Value::Object(m) => {
            out.push_str(&format!("<{name}>"));
            for (k, v) in m {
                write(k, v, out);
            }
            out.push_str(&format!("</{name}>"));
        }
        Value::Array(items) => {
            out.push_str(&format!("<{name}>"));
            for v in items {
                write("member", v, out);
            }
            out.push_str(&format!("</{name}>"));
        }
        Value::String(s) => out.push_str(&format!("<{name}>{}</{name}>", escape(s))),
        other => out.push_str(&format!("<{name}>{other}</{name}>")),
    }
}

/// A whole answer document: `<root xmlns=NS>` with `members` inside.
pub fn document(root: &str, members: &Value) -> String {
    let mut out = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{root} xmlns=\"{NS}\">");
    if let Value::Object(m) = members {
        for (k, v) in m {
            write(k, v, &mut out);
        }
    }
    out.push_str(&format!("</{root}>"));
    out
}

/// The AWS error shape S3 Control answers with.
pub fn error(code: &str, message: &str, request_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse><Error><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
        escape(code),
        escape(message),
        escape(request_id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_create_job_body_becomes_typed_members_and_back() {
        let body = format!(
            "<CreateJobRequest xmlns=\"{NS}\"><ConfirmationRequired>true</ConfirmationRequired>\
             <Operation><LambdaInvoke><FunctionArn>arn:f</FunctionArn><UserArguments><entry><key>codec</key>\
             <value>alaw &amp; more</value></entry></UserArguments></LambdaInvoke></Operation>\
             <Manifest><Spec><Format>S3BatchOperations_CSV_20180820</Format><Fields><member>Bucket</member>\
             <member>Key</member></Fields></Spec></Manifest><Priority>10</Priority></CreateJobRequest>"
        );
        let (root, v) = parse(&body).unwrap();
        assert_eq!(root, "CreateJobRequest");
        assert_eq!(v["ConfirmationRequired"], json!(true));
        assert_eq!(v["Priority"], json!(10));
        assert_eq!(v["Manifest"]["Spec"]["Fields"], json!(["Bucket", "Key"]));
        assert_eq!(
            v["Operation"]["LambdaInvoke"]["UserArguments"],
            json!({"codec": "alaw & more"})
        );
        let out = document("Echo", &v);
        let (_, again) = parse(&out).unwrap();
        assert_eq!(again, v);
        assert!(
            parse("<a><b></a>")
                .unwrap_err()
                .starts_with("malformed XML")
        );
    }
}

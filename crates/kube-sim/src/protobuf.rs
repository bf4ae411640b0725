//! Decoding of the Kubernetes protobuf envelope for the few request bodies that kubectl's typed clients send
//! as `application/vnd.kubernetes.protobuf` (create configmap/secret/namespace/serviceaccount, create token,
//! auth can-i, create job). Responses are always JSON, which those clients also accept. Other kinds get 415.
//! A Job carries the pod template fields the simulator acts on (containers with command, args, env, envFrom,
//! volume mounts, resources and security context; volumes; restart policy, deadlines, service account,
//! security context); the others (probes, ports, affinity, ...) are dropped.

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::status::ApiError;

/// Content type of protobuf requests.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

#[derive(Clone, Copy)]
enum F {
    Str(&'static str),
    Int(&'static str),
    Bool(&'static str),
    RepStr(&'static str),
    MapStr(&'static str),
    MapBytes(&'static str),
    /// A map whose values are `resource.Quantity` messages (their string form).
    MapQuantity(&'static str),
    Msg(&'static str, &'static [(u64, F)]),
    RepMsg(&'static str, &'static [(u64, F)]),
    /// An embedded message whose fields JSON shows inline (`LocalObjectReference`, `VolumeSource`).
    Inline(&'static [(u64, F)]),
}

const OBJECT_META: &[(u64, F)] = &[
    (1, F::Str("name")),
    (2, F::Str("generateName")),
    (3, F::Str("namespace")),
    (11, F::MapStr("labels")),
    (12, F::MapStr("annotations")),
    (13, F::RepMsg("ownerReferences", OWNER_REFERENCE)),
    (14, F::RepStr("finalizers")),
];
const OWNER_REFERENCE: &[(u64, F)] = &[
    (5, F::Str("apiVersion")),
    (1, F::Str("kind")),
    (3, F::Str("name")),
    (4, F::Str("uid")),
    (6, F::Bool("controller")),
    (7, F::Bool("blockOwnerDeletion")),
];
const LOCAL_REF: (u64, F) = (1, F::Inline(&[(1, F::Str("name"))]));
const KEY_SELECTOR: &[(u64, F)] = &[LOCAL_REF, (2, F::Str("key")), (3, F::Bool("optional"))];
const FIELD_SELECTOR: &[(u64, F)] = &[(1, F::Str("apiVersion")), (2, F::Str("fieldPath"))];
const RESOURCE_SELECTOR: &[(u64, F)] = &[(1, F::Str("containerName")), (2, F::Str("resource"))];
const ENV_VAR: &[(u64, F)] = &[
    (1, F::Str("name")),
    (2, F::Str("value")),
    (
        3,
        F::Msg(
            "valueFrom",
            &[
                (1, F::Msg("fieldRef", FIELD_SELECTOR)),
                (2, F::Msg("resourceFieldRef", RESOURCE_SELECTOR)),
                (3, F::Msg("configMapKeyRef", KEY_SELECTOR)),
                (4, F::Msg("secretKeyRef", KEY_SELECTOR)),
            ],
        ),
    ),
];
const ENV_SOURCE: &[(u64, F)] = &[LOCAL_REF, (2, F::Bool("optional"))];
const ENV_FROM: &[(u64, F)] = &[
    (1, F::Str("prefix")),
    (2, F::Msg("configMapRef", ENV_SOURCE)),
    (3, F::Msg("secretRef", ENV_SOURCE)),
];
const VOLUME_MOUNT: &[(u64, F)] = &[
    (1, F::Str("name")),
    (2, F::Bool("readOnly")),
    (3, F::Str("mountPath")),
    (4, F::Str("subPath")),
];
const SECCOMP: &[(u64, F)] = &[(1, F::Str("type")), (2, F::Str("localhostProfile"))];
const SECURITY_CONTEXT: &[(u64, F)] = &[
    (
        1,
        F::Msg(
            "capabilities",
            &[(1, F::RepStr("add")), (2, F::RepStr("drop"))],
        ),
    ),
    (2, F::Bool("privileged")),
    (4, F::Int("runAsUser")),
    (8, F::Int("runAsGroup")),
    (5, F::Bool("runAsNonRoot")),
    (6, F::Bool("readOnlyRootFilesystem")),
    (7, F::Bool("allowPrivilegeEscalation")),
    (11, F::Msg("seccompProfile", SECCOMP)),
];
const POD_SECURITY_CONTEXT: &[(u64, F)] = &[
    (2, F::Int("runAsUser")),
    (6, F::Int("runAsGroup")),
    (3, F::Bool("runAsNonRoot")),
    (5, F::Int("fsGroup")),
    (10, F::Msg("seccompProfile", SECCOMP)),
];
const CONTAINER: &[(u64, F)] = &[
    (1, F::Str("name")),
    (2, F::Str("image")),
    (3, F::RepStr("command")),
    (4, F::RepStr("args")),
    (5, F::Str("workingDir")),
    (19, F::RepMsg("envFrom", ENV_FROM)),
    (7, F::RepMsg("env", ENV_VAR)),
    (
        8,
        F::Msg(
            "resources",
            &[
                (1, F::MapQuantity("limits")),
                (2, F::MapQuantity("requests")),
            ],
        ),
    ),
    (9, F::RepMsg("volumeMounts", VOLUME_MOUNT)),
    (14, F::Str("imagePullPolicy")),
    (15, F::Msg("securityContext", SECURITY_CONTEXT)),
];
const KEY_TO_PATH: &[(u64, F)] = &[(1, F::Str("key")), (2, F::Str("path")), (3, F::Int("mode"))];
const DOWNWARD_FILE: &[(u64, F)] = &[
    (1, F::Str("path")),
    (2, F::Msg("fieldRef", FIELD_SELECTOR)),
    (3, F::Msg("resourceFieldRef", RESOURCE_SELECTOR)),
    (4, F::Int("mode")),
];
const PROJECTED_KEYS: &[(u64, F)] = &[
    LOCAL_REF,
    (2, F::RepMsg("items", KEY_TO_PATH)),
    (4, F::Bool("optional")),
];
const VOLUME_SOURCE: &[(u64, F)] = &[
    (
        1,
        F::Msg("hostPath", &[(1, F::Str("path")), (2, F::Str("type"))]),
    ),
    (2, F::Msg("emptyDir", &[(1, F::Str("medium"))])),
    (
        6,
        F::Msg(
            "secret",
            &[
                (1, F::Str("secretName")),
                (2, F::RepMsg("items", KEY_TO_PATH)),
                (3, F::Int("defaultMode")),
                (4, F::Bool("optional")),
            ],
        ),
    ),
    (
        10,
        F::Msg(
            "persistentVolumeClaim",
            &[(1, F::Str("claimName")), (2, F::Bool("readOnly"))],
        ),
    ),
    (
        16,
        F::Msg(
            "downwardAPI",
            &[
                (1, F::RepMsg("items", DOWNWARD_FILE)),
                (2, F::Int("defaultMode")),
            ],
        ),
    ),
    (
        19,
        F::Msg(
            "configMap",
            &[
                LOCAL_REF,
                (2, F::RepMsg("items", KEY_TO_PATH)),
                (3, F::Int("defaultMode")),
                (4, F::Bool("optional")),
            ],
        ),
    ),
    (
        26,
        F::Msg(
            "projected",
            &[
                (
                    1,
                    F::RepMsg(
                        "sources",
                        &[
                            (1, F::Msg("secret", PROJECTED_KEYS)),
                            (
                                2,
                                F::Msg("downwardAPI", &[(1, F::RepMsg("items", DOWNWARD_FILE))]),
                            ),
                            (3, F::Msg("configMap", PROJECTED_KEYS)),
                            (
                                4,
                                F::Msg(
                                    "serviceAccountToken",
                                    &[
                                        (1, F::Str("audience")),
                                        (2, F::Int("expirationSeconds")),
                                        (3, F::Str("path")),
                                    ],
                                ),
                            ),
                        ],
                    ),
                ),
                (2, F::Int("defaultMode")),
            ],
        ),
    ),
];
const POD_SPEC: &[(u64, F)] = &[
    (
        1,
        F::RepMsg(
            "volumes",
            &[(1, F::Str("name")), (2, F::Inline(VOLUME_SOURCE))],
        ),
    ),
    (20, F::RepMsg("initContainers", CONTAINER)),
    (2, F::RepMsg("containers", CONTAINER)),
    (3, F::Str("restartPolicy")),
    (4, F::Int("terminationGracePeriodSeconds")),
    (5, F::Int("activeDeadlineSeconds")),
    (7, F::MapStr("nodeSelector")),
    (8, F::Str("serviceAccountName")),
    (21, F::Bool("automountServiceAccountToken")),
    (14, F::Msg("securityContext", POD_SECURITY_CONTEXT)),
    (24, F::Str("priorityClassName")),
];
const JOB_SPEC: &[(u64, F)] = &[
    (1, F::Int("parallelism")),
    (2, F::Int("completions")),
    (3, F::Int("activeDeadlineSeconds")),
    (7, F::Int("backoffLimit")),
    (
        6,
        F::Msg("template", &[META, (2, F::Msg("spec", POD_SPEC))]),
    ),
    (8, F::Int("ttlSecondsAfterFinished")),
    (10, F::Bool("suspend")),
];
const JOB: &[(u64, F)] = &[META, (2, F::Msg("spec", JOB_SPEC))];
const META: (u64, F) = (1, F::Msg("metadata", OBJECT_META));
const CONFIG_MAP: &[(u64, F)] = &[
    META,
    (2, F::MapStr("data")),
    (3, F::MapBytes("binaryData")),
    (4, F::Bool("immutable")),
];
const SECRET: &[(u64, F)] = &[
    META,
    (2, F::MapBytes("data")),
    (3, F::Str("type")),
    (4, F::MapStr("stringData")),
    (5, F::Bool("immutable")),
];
const ONLY_META: &[(u64, F)] = &[META];
const RESOURCE_ATTRIBUTES: &[(u64, F)] = &[
    (1, F::Str("namespace")),
    (2, F::Str("verb")),
    (3, F::Str("group")),
    (4, F::Str("version")),
    (5, F::Str("resource")),
    (6, F::Str("subresource")),
    (7, F::Str("name")),
];
const NON_RESOURCE_ATTRIBUTES: &[(u64, F)] = &[(1, F::Str("path")), (2, F::Str("verb"))];
const SSAR_SPEC: &[(u64, F)] = &[
    (1, F::Msg("resourceAttributes", RESOURCE_ATTRIBUTES)),
    (2, F::Msg("nonResourceAttributes", NON_RESOURCE_ATTRIBUTES)),
];
const SSAR: &[(u64, F)] = &[META, (2, F::Msg("spec", SSAR_SPEC))];
const SSRR: &[(u64, F)] = &[META, (2, F::Msg("spec", &[(1, F::Str("namespace"))]))];
const BOUND_REF: &[(u64, F)] = &[
    (1, F::Str("kind")),
    (2, F::Str("apiVersion")),
    (3, F::Str("name")),
    (4, F::Str("uid")),
];
const TOKEN_SPEC: &[(u64, F)] = &[
    (1, F::RepStr("audiences")),
    (3, F::Msg("boundObjectRef", BOUND_REF)),
    (4, F::Int("expirationSeconds")),
];
const TOKEN_REQUEST: &[(u64, F)] = &[META, (2, F::Msg("spec", TOKEN_SPEC))];

fn bad(why: &str) -> ApiError {
    ApiError::bad_request(format!("decoding protobuf body: {why}"))
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ApiError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .b
                .get(self.pos)
                .ok_or_else(|| bad("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("varint too long"))
    }
    fn bytes(&mut self) -> Result<&'a [u8], ApiError> {
        let n = usize::try_from(self.varint()?).map_err(|_| bad("length overflow"))?;
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or_else(|| bad("truncated field"))?;
        let out = &self.b[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    /// Next (field, wire type, payload) with payload as bytes or varint.
    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, ApiError> {
        if self.pos >= self.b.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.pos += 8;
                Field::Skip
            }
            2 => Field::Bytes(self.bytes()?),
            5 => {
                self.pos += 4;
                Field::Skip
            }
            w => return Err(bad(&format!("unsupported wire type {w}"))),
        };
        if self.pos > self.b.len() {
            return Err(bad("truncated fixed field"));
        }
        Ok(Some((key >> 3, field)))
    }
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Skip,
}

fn utf8(b: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(b.to_vec()).map_err(|_| bad("invalid UTF-8 in string field"))
}

fn map_entry(b: &[u8]) -> Result<(String, Vec<u8>), ApiError> {
    let mut r = Reader { b, pos: 0 };
    let (mut k, mut v) = (String::new(), Vec::new());
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(x)) => k = utf8(x)?,
            (2, Field::Bytes(x)) => v = x.to_vec(),
            _ => {}
        }
    }
    Ok((k, v))
}

fn decode_message(b: &[u8], schema: &[(u64, F)]) -> Result<Value, ApiError> {
    let mut out = Map::new();
    decode_into(&mut out, b, schema)?;
    Ok(Value::Object(out))
}

fn decode_into(
    out: &mut Map<String, Value>,
    b: &[u8],
    schema: &[(u64, F)],
) -> Result<(), ApiError> {
    let mut r = Reader { b, pos: 0 };
    while let Some((n, field)) = r.next()? {
        let Some((_, f)) = schema.iter().find(|(num, _)| *num == n) else {
            continue;
        };
        match (*f, field) {
            // Go writes every plain string field, set or not; JSON (omitempty) leaves empty ones out.
            (F::Str(_), Field::Bytes([])) => {}
            (F::Str(name), Field::Bytes(x)) => {
                out.insert(name.into(), json!(utf8(x)?));
            }
            (F::Int(name), Field::Varint(v)) => {
                out.insert(name.into(), json!(v as i64));
            }
            (F::Bool(name), Field::Varint(v)) => {
                out.insert(name.into(), json!(v != 0));
            }
            (F::RepStr(name), Field::Bytes(x)) => {
                let arr = out.entry(name).or_insert_with(|| json!([]));
                if let Some(a) = arr.as_array_mut() {
                    a.push(json!(utf8(x)?));
                }
            }
            (F::MapStr(name), Field::Bytes(x)) => {
                let (k, v) = map_entry(x)?;
                out.entry(name).or_insert_with(|| json!({}))[k] = json!(utf8(&v)?);
            }
            (F::MapBytes(name), Field::Bytes(x)) => {
                let (k, v) = map_entry(x)?;
                out.entry(name).or_insert_with(|| json!({}))[k] =
                    json!(base64::engine::general_purpose::STANDARD.encode(v));
            }
            (F::MapQuantity(name), Field::Bytes(x)) => {
                let (k, v) = map_entry(x)?;
                let quantity = decode_message(&v, &[(1, F::Str("string"))])?;
                out.entry(name).or_insert_with(|| json!({}))[k] = quantity["string"].clone();
            }
            (F::Msg(name, sub), Field::Bytes(x)) => {
                out.insert(name.into(), decode_message(x, sub)?);
            }
            (F::RepMsg(name, sub), Field::Bytes(x)) => {
                let item = decode_message(x, sub)?;
                if let Some(a) = out.entry(name).or_insert_with(|| json!([])).as_array_mut() {
                    a.push(item);
                }
            }
            (F::Inline(sub), Field::Bytes(x)) => decode_into(out, x, sub)?,
            _ => return Err(bad(&format!("unexpected wire type for field {n}"))),
        }
    }
    Ok(())
}

/// Decode a protobuf request body (`k8s\0` + runtime.Unknown) into the JSON object it carries.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let rest = body
        .strip_prefix(b"k8s\x00")
        .ok_or_else(|| bad("missing k8s envelope"))?;
    let mut r = Reader { b: rest, pos: 0 };
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(tm)) => {
                let t = decode_message(tm, &[(1, F::Str("apiVersion")), (2, F::Str("kind"))])?;
                api_version = t
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .into();
                kind = t
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .into();
            }
            (2, Field::Bytes(x)) => raw = x,
            _ => {}
        }
    }
    let schema = match kind.as_str() {
        "ConfigMap" => CONFIG_MAP,
        "Secret" => SECRET,
        "Namespace" | "ServiceAccount" => ONLY_META,
        "SelfSubjectAccessReview" => SSAR,
        "SelfSubjectRulesReview" => SSRR,
        "TokenRequest" => TOKEN_REQUEST,
        "Job" => JOB,
        other => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "kube-sim decodes protobuf only for ConfigMap, Secret, Namespace, ServiceAccount, SelfSubjectAccessReview, SelfSubjectRulesReview, TokenRequest and Job, not {other:?}; send application/json"
                ),
            ));
        }
    };
    let mut obj = decode_message(raw, schema)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![((n << 3) | 2) as u8, payload.len() as u8];
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn a_configmap_in_a_protobuf_envelope_decodes_to_json() {
        let meta = [field(1, b"cfg"), field(3, b"app")].concat();
        let entry = [field(1, b"k"), field(2, b"v")].concat();
        let raw = [field(1, &meta), field(2, &entry)].concat();
        let tm = [field(1, b"v1"), field(2, b"ConfigMap")].concat();
        let body = [b"k8s\x00".to_vec(), field(1, &tm), field(2, &raw)].concat();
        let obj = decode(&body).expect("decodes");
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "app"}, "data": {"k": "v"}})
        );
    }

    #[test]
    fn unknown_kinds_and_garbage_are_rejected_cleanly() {
        let tm = [field(1, b"apps/v1"), field(2, b"Deployment")].concat();
        let body = [b"k8s\x00".to_vec(), field(1, &tm)].concat();
        assert_eq!(decode(&body).expect_err("unsupported").code, 415);
        assert_eq!(decode(b"k8s\x00\x0a\xff").expect_err("truncated").code, 400);
        assert_eq!(decode(b"{}").expect_err("no envelope").code, 400);
    }
}

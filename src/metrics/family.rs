//! Gauge families and their text exposition through `prometheus-client`, shared by the exporter
//! ([`super::exposition`]) and the Pushgateway push ([`super::push`]).
//!
//! Our metrics are computed on demand (from a snapshot mirror, or from a run's outcome), not kept in live
//! counters, so they reach `prometheus-client` as a [`Collector`] of constant gauges. That keeps the output in
//! the order the families and samples are given (the exporter's text is compared byte for byte), and the help
//! texts exactly as written (`Registry::register` would append a `.`).
//!
//! The text is the Prometheus text format 0.0.4: for gauges `prometheus-client`'s OpenMetrics encoding is the
//! same line for line, and the OpenMetrics `# EOF` trailer is left off because we serve and push it as 0.0.4.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// A gauge value. Integers print without a decimal point (`1`, `1767315600`), as before the move onto
/// `prometheus-client`, which prints every `f64` with one (`1.0`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
}

impl From<f64> for Value {
    /// Integral values within `i64` become [`Value::Int`].
    fn from(v: f64) -> Value {
        if v.fract() == 0.0 && v.abs() < 9.0e15 {
            Value::Int(v as i64)
        } else {
            Value::Float(v)
        }
    }
}

/// One gauge metric: its name, help text and samples, in output order.
#[derive(Debug, Clone, PartialEq)]
pub struct GaugeFamily {
    pub name: String,
    pub help: String,
    pub samples: Vec<(Vec<(String, String)>, Value)>,
}

impl GaugeFamily {
    pub fn new(name: &str, help: &str) -> GaugeFamily {
        GaugeFamily {
            name: name.to_string(),
            help: help.to_string(),
            samples: Vec::new(),
        }
    }

    /// Adds a sample with the given labels (label values are escaped on output).
    pub fn sample(&mut self, labels: Vec<(String, String)>, value: impl Into<Value>) {
        self.samples.push((labels, value.into()));
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

/// The families as a collector; `prometheus-client` calls it on encoding.
#[derive(Debug)]
struct Families(Vec<GaugeFamily>);

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in &self.0 {
            let mut metric =
                encoder.encode_descriptor(&family.name, &family.help, None, MetricType::Gauge)?;
            for (labels, value) in &family.samples {
                let sample = metric.encode_family(labels)?;
                match *value {
                    Value::Int(v) => ConstGauge::new(v).encode(sample)?,
                    Value::Float(v) => ConstGauge::new(v).encode(sample)?,
                }
            }
        }
        Ok(())
    }
}

/// The text exposition of `families`, in their order.
pub fn encode(families: Vec<GaugeFamily>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Families(families)));
    let mut text = String::new();
    // Writing into a String cannot fail; the encoder only passes on the writer's errors.
    let _ = prometheus_client::encoding::text::encode_registry(&mut text, &registry);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn families_print_in_order_with_escaped_labels_and_plain_integers() {
        let mut a = GaugeFamily::new("b_first", "Help as written.");
        a.sample(vec![pair("pvc", "a\"b\\c\nd")], 2u64);
        a.sample(vec![pair("pvc", "x")], 0.5);
        let mut b = GaugeFamily::new("a_second", "No labels.");
        b.sample(Vec::new(), 1.0);
        assert_eq!(
            encode(vec![a, b]),
            "# HELP b_first Help as written.\n# TYPE b_first gauge\n\
             b_first{pvc=\"a\\\"b\\\\c\\nd\"} 2\nb_first{pvc=\"x\"} 0.5\n\
             # HELP a_second No labels.\n# TYPE a_second gauge\na_second 1\n"
        );
    }

    #[test]
    fn only_integral_floats_become_integers() {
        assert_eq!(Value::from(1_767_315_600.0), Value::Int(1_767_315_600));
        assert_eq!(Value::from(12.5), Value::Float(12.5));
        assert!(matches!(Value::from(f64::NAN), Value::Float(_)));
    }
}

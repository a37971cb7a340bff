"""cxpulse: real-time contact-centre KPIs from Kafka events."""

__version__ = "0.1.0"

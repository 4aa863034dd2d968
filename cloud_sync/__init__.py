"""MQTT uplink and downlink between a gateway and the city platform."""

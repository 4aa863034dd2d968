"""Tests of the MQTT side, and what they need: a PKI, a real Mosquitto, a faulty network."""

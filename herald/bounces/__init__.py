"""Bounces and complaints: reports received by mail (Herald's SMTP receiver, a mailbox),
from mail services' webhooks or the API, matched to the sends they are about, and their
effects on sends, campaign counters and contacts."""

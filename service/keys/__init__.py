"""The API keys' admin command (`python -m service.keys create --tenant NAME | list |
revoke KEY_ID`), for the Redis at REDIS_URL, else the one `make run` wrote to
./var/redis-url (`cli`)."""

import os, cliproxy  # streams an answer from the mock upstream (MOCK_URL, e.g. http://127.0.0.1:PORT)
client = cliproxy.Client({"openai-compatibility": [{"name": "mock", "base-url": os.environ["MOCK_URL"] + "/v1", "api-key-entries": [{"api-key": "sk-example"}], "models": [{"name": "gpt-4o"}]}]})
for chunk in client.chat(model="gpt-4o", messages=[{"role": "user", "content": 'mock:{"reply": "Hello from cliproxy, 世界 👋", "chunk": 3}'}], stream=True):
    print(*(choice["delta"].get("content") or "" for choice in chunk["choices"]), sep="", end="", flush=True)
print()

// ollama-js against the proxy: `node thinking.mjs <proxy url> <model>` prints what came back, as JSON,
// for tests/integration/test_thinking.py (think on a model no catalog describes, whole and streamed).
import { Ollama } from 'ollama'

const [host, model] = process.argv.slice(2)
const client = new Ollama({ host })
const messages = [{ role: 'user', content: 'why is the sky blue?' }]

const whole = await client.chat({ model, messages, think: true })
const streamed = { thinking: '', content: '', done: false }
for await (const part of await client.chat({ model, messages, think: true, stream: true })) {
  streamed.thinking += part.message.thinking ?? ''
  streamed.content += part.message.content ?? ''
  streamed.done = part.done
}
const hidden = await client.chat({ model, messages, think: false })
console.log(JSON.stringify({
  whole: { thinking: whole.message.thinking ?? '', content: whole.message.content },
  streamed,
  hidden: { thinking: hidden.message.thinking ?? '', content: hidden.message.content },
}))

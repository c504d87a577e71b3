// An E2B script for the JavaScript SDK, written for E2B, run unchanged against Wrenn. Only the
// environment differs (E2B_API_KEY, E2B_API_URL, E2B_SANDBOX_URL or E2B_DOMAIN). Each step
// prints "ok <step>"; the first failure throws and exits non-zero.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const sdkDir = process.argv[2]
const { Sandbox, CommandExitError } = require(`${sdkDir}/node_modules/e2b`)
const SDK = require(`${sdkDir}/node_modules/e2b/package.json`).version

const ok = (step, detail = '') => console.log(`ok ${step} ${detail}`.trimEnd())
const expect = (cond, what) => {
  if (!cond) throw new Error(what)
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function main() {
  const marker = process.env.E2B_TEST_MARKER || 'wrenn'
  const sbx = await Sandbox.create('base', {
    timeoutMs: 300_000,
    metadata: { suite: marker },
    envs: { FOO: 'from-create' },
  })
  ok('create', sbx.sandboxId)
  expect(await sbx.isRunning(), 'isRunning after create')

  let r = await sbx.commands.run('echo out; echo err >&2')
  expect(r.stdout === 'out\n' && r.stderr === 'err\n' && r.exitCode === 0, `run: ${JSON.stringify(r)}`)
  try {
    await sbx.commands.run('exit 3')
    throw new Error('exit 3 did not throw')
  } catch (e) {
    expect(e instanceof CommandExitError && e.exitCode === 3, `exit code: ${e}`)
  }
  r = await sbx.commands.run('echo $FOO $BAR', { envs: { BAR: 'from-run' } })
  expect(r.stdout === 'from-create from-run\n', `envs: ${r.stdout}`)
  r = await sbx.commands.run('pwd', { cwd: '/tmp' })
  expect(r.stdout === '/tmp\n', `cwd: ${r.stdout}`)
  r = await sbx.commands.run('whoami')
  expect(r.stdout === 'user\n', `default user: ${r.stdout}`)
  ok('commands.run')

  // Background, list, connect, kill, stdin.
  const h = await sbx.commands.run('sleep 1; echo done', { background: true })
  const pids = (await sbx.commands.list()).map((p) => p.pid)
  expect(pids.includes(h.pid), `list: ${pids}`)
  const again = await sbx.commands.connect(h.pid)
  const res = await again.wait()
  expect(res.stdout.endsWith('done\n'), `connect+wait: ${res.stdout}`)
  const sleeper = await sbx.commands.run('sleep 300', { background: true })
  expect((await sbx.commands.kill(sleeper.pid)) === true, 'kill')
  expect((await sbx.commands.kill(999999)) === false, 'kill missing')
  const cat = await sbx.commands.run('cat', { background: true, stdin: true })
  await sbx.commands.sendStdin(cat.pid, 'hello stdin\n')
  await sbx.commands.closeStdin(cat.pid)
  const catRes = await cat.wait()
  expect(catRes.stdout === 'hello stdin\n', `stdin: ${catRes.stdout}`)
  ok('background, list, connect, kill, stdin')

  // PTY.
  let text = ''
  const decoder = new TextDecoder()
  const term = await sbx.pty.create({ cols: 80, rows: 24, onData: (d) => (text += decoder.decode(d)) })
  await sbx.pty.resize(term.pid, { cols: 100, rows: 40 })
  await sbx.pty.sendInput(term.pid, new TextEncoder().encode('stty size; echo pty-$((40+2))\nexit\n'))
  await term.wait()
  expect(text.includes('40 100') && text.includes('pty-42'), `pty: ${JSON.stringify(text)}`)
  ok('pty')

  // Files and a streaming watch (WatchDir).
  await sbx.files.write('/home/user/js/a.txt', 'hello files')
  expect((await sbx.files.read('/home/user/js/a.txt')) === 'hello files', 'read')
  const entries = (await sbx.files.list('/home/user/js')).map((e) => e.name)
  expect(entries.length === 1 && entries[0] === 'a.txt', `list: ${entries}`)
  expect(await sbx.files.exists('/home/user/js/a.txt'), 'exists')
  expect(!(await sbx.files.exists('/home/user/js/none')), 'not exists')
  expect((await sbx.files.getInfo('/home/user/js/a.txt')).size === 11, 'getInfo')
  expect((await sbx.files.makeDir('/home/user/js/d')) === true, 'makeDir')
  expect((await sbx.files.makeDir('/home/user/js/d')) === false, 'makeDir again')
  await sbx.files.rename('/home/user/js/a.txt', '/home/user/js/b.txt')
  await sbx.files.remove('/home/user/js/b.txt')
  expect(!(await sbx.files.exists('/home/user/js/b.txt')), 'remove')
  const seen = []
  const watch = await sbx.files.watchDir('/home/user/js/d', (e) => seen.push(e.name))
  await sbx.files.write('/home/user/js/d/new.txt', 'x')
  for (let i = 0; i < 50 && !seen.includes('new.txt'); i++) await sleep(200)
  await watch.stop()
  expect(seen.includes('new.txt'), `watch: ${seen}`)
  ok('files and watch')

  // Info, list by metadata, set_timeout, kill.
  const info = await sbx.getInfo()
  expect(info.sandboxId === sbx.sandboxId && info.metadata.suite === marker, 'getInfo')
  const page = await Sandbox.list({ query: { metadata: { suite: marker } } }).nextItems()
  expect(page.some((s) => s.sandboxId === sbx.sandboxId), 'list by metadata')
  await sbx.setTimeout(60_000)
  await sbx.kill()
  expect(!(await sbx.isRunning()), 'isRunning after kill')
  ok('info, list, timeout, kill')
  console.log('all ok', SDK)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})

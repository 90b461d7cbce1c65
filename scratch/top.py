import json,sys,glob,collections
f=sorted(glob.glob('*.cpuprofile'))[-1]
p=json.load(open(f))
nodes={n['id']:n for n in p['nodes']}
self_t=collections.Counter()
dt=p['timeDeltas']; samples=p['samples']
for s,d in zip(samples,dt):
    self_t[s]+=d
tot=sum(dt)
byfn=collections.Counter()
for nid,t in self_t.items():
    cf=nodes[nid]['callFrame']
    key=f"{cf['functionName'] or '(anon)'} {cf['url'].split('/')[-1]}:{cf['lineNumber']}"
    byfn[key]+=t
for k,v in byfn.most_common(int(sys.argv[1]) if len(sys.argv)>1 else 40):
    print(f"{v/tot*100:5.1f}% {k}")
# inclusive per url
parent={}
for n in p['nodes']:
    for c in n.get('children',[]): parent[c]=n['id']
incl=collections.Counter()
for nid,t in self_t.items():
    seen=set(); x=nid
    while x is not None:
        u=nodes[x]['callFrame']['url'].split('/')[-1]
        if u not in seen: incl[u]+=t; seen.add(u)
        x=parent.get(x)
print("--- inclusive by file")
for k,v in incl.most_common(30): print(f"{v/tot*100:5.1f}% {k}")

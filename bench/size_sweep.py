"""How identification degrades as a face gets smaller: the basis of pof's quality gate.

    python bench/size_sweep.py        (after bench/make_core_set.py and bench/core.py)

Each plain probe of the core set is shrunk so its eyes are N px apart, then searched against
the core gallery (bench/work/core/dataset) with the quality gate switched off.
"""
import csv, numpy as np, cv2
from pof.pipeline import Pipeline
from pof.stages.load import load_image
from pof.matching.search import Gallery, Searcher
root='bench/work/core/'
rows=[r for r in csv.DictReader(open(root+'probes.csv')) if r['condition']=='plain']
p=Pipeline(); s=Searcher(Gallery.load(root+'dataset'), min_interocular=0)
enrolled=set(s.gallery.labels)
for iod in (40, 20, 14, 10, 8, 6, 5, 4):
    stats=[]
    for r in rows:
        im=load_image(root+r['path']).pixels
        f0=p.analyze(im, with_crops=False)
        if not f0: continue
        f=max(f0,key=lambda f:f.box[2])
        sc=iod/f.interocular
        small=cv2.resize(im,(max(8,int(im.shape[1]*sc)),max(8,int(im.shape[0]*sc))),interpolation=cv2.INTER_AREA)
        fs=p.analyze(small, with_crops=False)
        if not fs: stats.append((r['person'] in enrolled, False, False, False, 0, 0)); continue
        g=max(fs,key=lambda f:f.box[2]); res=s.search([g],1)[0].to_json()
        # no candidates: another gate (blur) refused the face; counted as found, not identified
        top=res['candidates'][0] if res['candidates'] else {'person': None}
        stats.append((r['person'] in enrolled, True, top['person']==r['person'], res['decision']=='match', g.interocular, g.quality))
    a=np.array(stats,dtype=object)
    m=a[a[:,0]==True]; n=a[a[:,0]==False]
    print(f"iod {iod:3d}: detected {np.mean(a[:,1].astype(bool)):.2f} rank1 {np.mean(m[:,2].astype(bool)):.2f} DIR {np.mean((m[:,2]&m[:,3]).astype(bool)):.2f} FPIR {np.mean(n[:,3].astype(bool)):.2f} measured iod {np.median(a[a[:,1]==True][:,4].astype(float)) if a[:,1].any() else 0:.1f} q {np.median(a[a[:,1]==True][:,5].astype(float)) if a[:,1].any() else 0:.2f}")
